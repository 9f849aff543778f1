"""OneLake (Microsoft Fabric): its URLs and its filesystem.

OneLake speaks the ADLS Gen2 API at `onelake.dfs.fabric.microsoft.com`, with the workspace
as the container and the item (lakehouse, mirrored database) as the first folder:

    onelake://<workspace>/<item>/Files/...
    abfss://<workspace>@onelake.dfs.fabric.microsoft.com/<item>/Files/...

Both name the same place; `onelake_url` turns the first into the second, which
`hygge.storage.Location` already parses (container = workspace, account = onelake).

OneLake takes Microsoft Entra tokens only (no account keys). pyarrow's Azure filesystem
signs in with the Azure SDK for C++'s azure-identity library, which the pyarrow wheel links
in (pyarrow 26.0.1, as pinned: azure-identity-cpp 1.13.3). Given no credential, it uses that
library's `DefaultAzureCredential`: EnvironmentCredential (a service principal from
AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH),
WorkloadIdentityCredential, ManagedIdentityCredential, AzureCliCredential (`az login`), in
that order; AZURE_TOKEN_CREDENTIALS narrows it (`prod`, `dev` or one credential's name), as
in the Python azure-identity package. `storage_options` may name a service principal
(`azure_client_id`, `azure_tenant_id`, `azure_client_secret`) or, with `azure_client_id`
alone, a user-assigned managed identity. docs/fabric.md says why the Python package is not
needed. Nothing is imported until a OneLake URL is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hygge.errors import ConfigError

if TYPE_CHECKING:
    from hygge.storage.objects import ObjectStorage

ONELAKE_SCHEME = "onelake"
# The ADLS Gen2 (dfs) and Blob endpoints of OneLake; regional ones look like
# `westus-onelake.dfs.fabric.microsoft.com`.
FABRIC_SUFFIX = ".fabric.microsoft.com"
ONELAKE_DFS_HOST = "onelake.dfs.fabric.microsoft.com"

# storage_options keys of a service principal -> the environment variables Azure Identity reads
_PRINCIPAL = {
    "azure_client_id": "AZURE_CLIENT_ID",
    "azure_tenant_id": "AZURE_TENANT_ID",
    "azure_client_secret": "AZURE_CLIENT_SECRET",
}


def onelake_url(value: str) -> str:
    """`onelake://ws/item/path` -> `abfss://ws@onelake.dfs.fabric.microsoft.com/item/path`;
    any other value is returned as it is."""
    if not value.lower().startswith(f"{ONELAKE_SCHEME}://"):
        return value
    parts = urlsplit(value)
    workspace, path = parts.netloc, parts.path.strip("/")
    if not workspace or not path:
        raise ConfigError(
            f"{value} names no workspace and item",
            hint="write onelake://<workspace>/<item>/Files/... (names or GUIDs)",
        )
    return f"abfss://{workspace}@{ONELAKE_DFS_HOST}/{path}"


def is_onelake(url: str) -> bool:
    """True for a OneLake URL (either form)."""
    if url.lower().startswith(f"{ONELAKE_SCHEME}://"):
        return True
    if "://" not in url:
        return False
    host = urlsplit(url).netloc.rsplit("@", 1)[-1].lower()
    return host.endswith(FABRIC_SUFFIX)


def host_of(url: str) -> str:
    """The OneLake host named by an abfss:// URL (regional endpoints stay regional)."""
    return urlsplit(onelake_url(url)).netloc.rsplit("@", 1)[-1].lower() or ONELAKE_DFS_HOST


def filesystem_kwargs(url: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The arguments of pyarrow's AzureFileSystem for OneLake: the Fabric endpoints and, when
    a service principal (or a user-assigned managed identity) is given in storage_options,
    its credentials; with none, azure-identity's default chain (environment, workload
    identity, managed identity, Azure CLI)."""
    host = host_of(url)
    # pyarrow builds `https://<account><authority>` from an authority that starts with a dot
    region = host.split(".", 1)[0]  # "onelake" or "westus-onelake"
    suffix = host[len(region) :]  # ".dfs.fabric.microsoft.com"
    kwargs: dict[str, Any] = {
        "account_name": region,
        "dfs_storage_authority": suffix,
        "blob_storage_authority": suffix.replace(".dfs.", ".blob.", 1),
    }
    given = {str(k).lower(): str(v) for k, v in (options or {}).items() if v is not None}
    principal = {k: given[k] for k in _PRINCIPAL if given.get(k)}
    if set(principal) == {"azure_client_id"}:
        # a user-assigned managed identity: pyarrow's ManagedIdentityCredential(client_id)
        kwargs["client_id"] = principal["azure_client_id"]
    elif principal:
        missing = [k for k in _PRINCIPAL if k not in principal]
        if missing:
            raise ConfigError(
                f"a service principal for OneLake needs {', '.join(_PRINCIPAL)}; "
                f"{', '.join(missing)} is missing",
                key="storage_options",
                hint="give all three; azure_client_id alone for a user-assigned managed "
                "identity; or none for the default chain (AZURE_* variables, managed "
                "identity, az login)",
            )
        kwargs.update(
            client_id=principal["azure_client_id"],
            tenant_id=principal["azure_tenant_id"],
            client_secret=principal["azure_client_secret"],
        )
    if "azure_storage_account_key" in given or "account_key" in given:
        raise ConfigError(
            "OneLake takes Microsoft Entra credentials only, not an account key",
            key="storage_options",
            hint="remove the key; sign in with az login, a managed identity or a service "
            "principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET)",
        )
    return kwargs


def filesystem(url: str, options: Mapping[str, Any] | None) -> Any:
    """pyarrow's Azure filesystem for OneLake (what `hygge.storage.filesystems` gives every
    store for a OneLake URL). Only a service principal is taken from the options: an account
    key in the environment belongs to another Azure account."""
    import pyarrow.fs as pafs

    principal = {k: v for k, v in (options or {}).items() if str(k).lower() in _PRINCIPAL}
    return pafs.AzureFileSystem(**filesystem_kwargs(url, principal))


def storage(url: str, options: Mapping[str, Any] | None = None) -> ObjectStorage:
    """An `ObjectStorage` over OneLake for `url` (either form); an account key in the store's
    own `storage_options` is refused (OneLake takes Entra credentials only)."""
    from hygge.storage.objects import ObjectStorage

    abfss = onelake_url(url)
    filesystem_kwargs(abfss, options)  # refuses what OneLake cannot take, clearly
    return ObjectStorage.for_url(abfss, options)
