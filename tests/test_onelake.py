"""OneLake URLs, the filesystem arguments hygge gives pyarrow for them, and the Microsoft
Entra sign-in they lead to (OneLake itself cannot be reached from tests, and no test may
try to: token requests go to a closed local port)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from hygge.errors import ConfigError
from hygge.storage import onelake
from hygge.stores import _landing as lz
from hygge.stores.open_mirroring import OpenMirroringStore
from tests.conftest import ROOT

ABFSS = (
    "abfss://Sales@onelake.dfs.fabric.microsoft.com/erp.MountedRelationalDatabase/Files/LandingZone"
)


def test_onelake_url_becomes_the_abfss_form():
    short = "onelake://Sales/erp.MountedRelationalDatabase/Files/LandingZone"
    assert onelake.onelake_url(short) == ABFSS
    assert onelake.onelake_url(ABFSS) == ABFSS
    assert onelake.is_onelake(short) and onelake.is_onelake(ABFSS)
    assert not onelake.is_onelake("abfss://c@acct.dfs.core.windows.net/x")
    assert not onelake.is_onelake("/data/LandingZone")
    with pytest.raises(ConfigError, match="workspace and item"):
        onelake.onelake_url("onelake://Sales")


def test_store_settings_take_either_form():
    store = OpenMirroringStore(
        "t", path="onelake://Sales/erp.MountedRelationalDatabase/Files/LandingZone", key="id"
    )
    assert store.settings.path == ABFSS
    assert store.table == "t" and store.key == ["id"]


def test_filesystem_arguments_use_the_fabric_endpoints_and_entra():
    kwargs = onelake.filesystem_kwargs(ABFSS, None)
    assert kwargs == {
        "account_name": "onelake",
        "dfs_storage_authority": ".dfs.fabric.microsoft.com",
        "blob_storage_authority": ".blob.fabric.microsoft.com",
    }  # no key: Azure Identity's default chain
    regional = ABFSS.replace("@onelake.", "@westus-onelake.")
    assert onelake.filesystem_kwargs(regional, None)["account_name"] == "westus-onelake"
    principal = {"azure_client_id": "c", "azure_tenant_id": "t", "azure_client_secret": "s"}
    kwargs = onelake.filesystem_kwargs(ABFSS, principal)
    assert (kwargs["client_id"], kwargs["tenant_id"], kwargs["client_secret"]) == ("c", "t", "s")
    # pyarrow accepts them (building the filesystem sends nothing)
    assert isinstance(pafs.AzureFileSystem(**kwargs), pafs.AzureFileSystem)


def test_onelake_refuses_half_a_principal_and_account_keys():
    with pytest.raises(ConfigError, match="azure_client_secret is missing"):
        onelake.filesystem_kwargs(ABFSS, {"azure_client_id": "c", "azure_tenant_id": "t"})
    with pytest.raises(ConfigError, match="not an account key"):
        onelake.filesystem_kwargs(ABFSS, {"account_key": "k"})


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("orders", True),
        ("Order Lines", True),
        ("dbo.orders", True),
        ("a/b", False),
        ("_x", False),
        (".x", False),
        ("x.schema", False),
        ("a:b", False),
        ("", False),
        ("x" * 256, False),
    ],
)
def test_table_folder_names(name: str, ok: bool):
    assert (lz.folder_problem(name) is None) is ok


def test_data_file_names_are_twenty_digits():
    assert lz.data_file_name(1) == "00000000000000000001.parquet"
    assert lz.DATA_FILE.match(lz.data_file_name(12345678901234567890))
    assert not lz.DATA_FILE.match("1.parquet")


def test_every_store_reaches_onelake_through_the_same_filesystem(monkeypatch):
    """hygge.storage gives any file store a OneLake filesystem for an abfss:// OneLake URL;
    an Azure account key in the environment (another account's) is not sent to OneLake."""
    from hygge.storage.objects import ObjectStorage

    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "a-key-of-another-account")
    storage = ObjectStorage.for_url(ABFSS)
    assert isinstance(storage.fs, pafs.AzureFileSystem)
    assert (storage.location.bucket, storage.location.account) == ("Sales", "onelake")
    with pytest.raises(ConfigError, match="not an account key"):
        onelake.storage(ABFSS, {"account_key": "k"})


# -- Microsoft Entra sign-in: the credential chain of the azure-identity library pyarrow links
# in, observed through its own log (AZURE_LOG_LEVEL). No token is ever obtained: the authority
# is a closed local port, so nothing leaves the machine.

SECRET = "not-a-real-secret-9f3c"
TENANT = "72f988bf-0000-4000-8000-00000000beef"
CLIENT = "11111111-2222-4333-8444-555555555555"


def _signed_out_env(**extra: str) -> dict[str, str]:
    """The environment of a process that tries to sign in: Azure SDK log on, no AZURE_*
    setting of the machine's own, the authority host on a port nothing listens on."""
    from tests.objectstore import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_"))}
    env.update(
        AZURE_LOG_LEVEL="verbose",
        AZURE_AUTHORITY_HOST=f"https://127.0.0.1:{free_port()}/",
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def _python(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    return done.stdout + done.stderr


def test_default_chain_is_azure_identitys():
    """Without a key, hygge's OneLake filesystem signs in with azure-identity's
    DefaultAzureCredential: environment (service principal), workload identity, managed
    identity, Azure CLI, in that order (what docs/fabric.md promises)."""
    out = _python(
        f"from hygge.storage import onelake; onelake.filesystem({ABFSS!r}, None)",
        _signed_out_env(),
    )
    assert (
        "DefaultAzureCredential: Created with the following credentials: EnvironmentCredential, "
        "WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential." in out
    ), out


def test_service_principal_from_the_environment_reaches_the_filesystem(tmp_path: Path):
    """AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, as a Fabric user already has
    them, are what `hygge validate` of a OneLake landing zone signs in with: a client-secret
    token request for that tenant. The secret is never shown; the failure says how to sign in."""
    from tests.conftest import run_cli
    from tests.helpers import parquet_file, write_flows

    source = parquet_file(tmp_path, "orders", {"id": [1, 2]})
    write_flows(
        tmp_path,
        f"flows:\n  orders:\n    home: {source}\n"
        f"    store: {{type: open_mirroring, path: '{ABFSS}', table: orders, key: [id]}}\n",
    )
    env = _signed_out_env(
        AZURE_TENANT_ID=TENANT,
        AZURE_CLIENT_ID=CLIENT,
        AZURE_CLIENT_SECRET=SECRET,
        AZURE_TOKEN_CREDENTIALS="EnvironmentCredential",  # no managed-identity probe
    )
    done = run_cli("validate", "flows.yml", cwd=tmp_path, env=env, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "EnvironmentCredential gets created with ClientSecretCredential" in out, out
    assert f"{env['AZURE_AUTHORITY_HOST']}{TENANT}/oauth2/v2.0/token" in out, out
    assert "cannot reach the landing zone" in out and "AZURE_CLIENT_SECRET" in out, out
    assert SECRET not in out
    assert "Traceback" not in out


def test_service_principal_in_storage_options_reaches_the_filesystem():
    """A principal in storage_options signs in as a client secret for its tenant, whatever
    the environment says; azure_client_id alone is a user-assigned managed identity."""
    options = {"azure_client_id": CLIENT, "azure_tenant_id": TENANT, "azure_client_secret": SECRET}
    code = (
        "from hygge.storage import onelake\n"
        f"fs = onelake.filesystem({ABFSS!r}, {options!r})\n"
        "try:\n    fs.get_file_info('Sales/x')\nexcept Exception:\n    print('refused')\n"
    )
    env = _signed_out_env(AZURE_TENANT_ID="another-tenant")
    out = _python(code, env)
    assert f"{env['AZURE_AUTHORITY_HOST']}{TENANT}/oauth2/v2.0/token" in out, out
    assert "another-tenant" not in out and "refused" in out, out
    assert SECRET not in out
    kwargs = onelake.filesystem_kwargs(ABFSS, {"azure_client_id": CLIENT})
    assert kwargs["client_id"] == CLIENT and "tenant_id" not in kwargs
    assert isinstance(pafs.AzureFileSystem(**kwargs), pafs.AzureFileSystem)
