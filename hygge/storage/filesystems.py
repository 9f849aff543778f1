"""pyarrow filesystems for each cloud, built from resolved options and cached per process."""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from hygge.storage.credentials import account_of
from hygge.storage.location import Location
from hygge.storage.onelake import is_onelake


def filesystem(location: Location, options: dict[str, str]) -> pafs.FileSystem:
    """The pyarrow filesystem serving `location` with these (resolved) options."""
    if location.cloud == "azure" and is_onelake(location.url):
        from hygge.storage import onelake  # Fabric's endpoints, Microsoft Entra sign-in

        return onelake.filesystem(location.url, options)
    account = account_of(location, options) if location.cloud == "azure" else None
    frozen = json.dumps(options, sort_keys=True)
    return _cached(location.cloud, account, frozen)


@lru_cache(maxsize=32)
def _cached(cloud: str, account: str | None, frozen: str) -> pafs.FileSystem:
    options: dict[str, str] = json.loads(frozen)
    if cloud == "s3":
        return _s3(options)
    if cloud == "azure":
        return _azure(account, options)
    return _gcs(options)


def _s3(o: dict[str, str]) -> pafs.S3FileSystem:
    endpoint = o.get("aws_endpoint_url")
    return pafs.S3FileSystem(
        access_key=o.get("aws_access_key_id"),
        secret_key=o.get("aws_secret_access_key"),
        session_token=o.get("aws_session_token"),
        region=o.get("aws_region") or "us-east-1",
        endpoint_override=endpoint,
        connect_timeout=5,
        request_timeout=60,
        # Transient faults are retried by hygge's flow retry with backoff; a few quick
        # retries here ride out a dropped connection without failing a whole flow.
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    )


def _azure(account: str | None, o: dict[str, str]) -> pafs.AzureFileSystem:
    kwargs: dict[str, str] = {}
    endpoint = o.get("azure_storage_endpoint")
    if endpoint:  # e.g. Azurite: http://127.0.0.1:10000/devstoreaccount1
        parts = urlsplit(endpoint)
        kwargs = {
            "blob_storage_authority": parts.netloc,
            "dfs_storage_authority": parts.netloc,
            "blob_storage_scheme": parts.scheme,
            "dfs_storage_scheme": parts.scheme,
        }
    return pafs.AzureFileSystem(
        account_name=account or "", account_key=o.get("azure_storage_account_key"), **kwargs
    )


def _gcs(o: dict[str, str]) -> pafs.GcsFileSystem:
    endpoint = o.get("gcs_endpoint")
    if endpoint:  # an emulator: anonymous, plain HTTP
        parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
        return pafs.GcsFileSystem(
            anonymous=True, endpoint_override=parts.netloc, scheme=parts.scheme or "http"
        )
    return pafs.GcsFileSystem()  # application default credentials
