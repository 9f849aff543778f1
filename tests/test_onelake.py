"""OneLake URLs and the filesystem arguments hygge gives pyarrow for them (pure: OneLake
itself cannot be reached from tests, and no test may try to)."""

from __future__ import annotations

import pyarrow.fs as pafs
import pytest

from hygge.errors import ConfigError
from hygge.storage import onelake
from hygge.stores import _landing as lz
from hygge.stores.open_mirroring import OpenMirroringStore

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
