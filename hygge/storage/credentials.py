"""Credentials and endpoints for each cloud: `storage_options:` first, then the cloud's
standard environment variables, then the cloud's own default chain (instance roles, Azure
managed identity, Google application default credentials).

`storage_options` use the key names of delta-rs / object_store (`aws_access_key_id`,
`azure_storage_account_key`, ...), so one set of options serves file and Delta stores alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hygge.storage.location import OBJECT_SCHEMES, Location

# option key -> the same setting under other names users write
_ALIASES = {
    "aws_access_key_id": ("access_key_id",),
    "aws_secret_access_key": ("secret_access_key",),
    "aws_session_token": ("session_token", "aws_token"),
    "aws_region": ("region", "aws_default_region"),
    "aws_endpoint_url": ("aws_endpoint", "endpoint_url", "endpoint"),
    "azure_storage_account_name": ("account_name", "azure_account_name"),
    "azure_storage_account_key": ("account_key", "access_key", "azure_storage_access_key"),
    "azure_storage_endpoint": ("azure_endpoint",),
    "google_application_credentials": ("google_service_account", "service_account_path"),
    "gcs_endpoint": ("google_endpoint",),
}

# option key -> environment variables, first set wins
_ENV = {
    "aws_access_key_id": ("AWS_ACCESS_KEY_ID",),
    "aws_secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
    "aws_session_token": ("AWS_SESSION_TOKEN",),
    "aws_region": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    "aws_endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
    "azure_storage_account_name": ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"),
    "azure_storage_account_key": ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY"),
    "azure_storage_endpoint": ("AZURE_STORAGE_ENDPOINT",),
    "google_application_credentials": ("GOOGLE_APPLICATION_CREDENTIALS",),
    "gcs_endpoint": ("STORAGE_EMULATOR_HOST",),  # the variable Google's own clients honour
}


_ENDPOINT_KEYS = {
    "s3": "aws_endpoint_url",
    "azure": "azure_storage_endpoint",
    "gcs": "gcs_endpoint",
}


def endpoint_setting(url: str) -> str:
    """Where a user sets the endpoint of `url`'s cloud, for hints: its environment variable
    (the one most often written) and storage_options."""
    cloud = OBJECT_SCHEMES.get(url.split("://", 1)[0].lower(), "")
    key = _ENDPOINT_KEYS.get(cloud)
    return f"{_ENV[key][-1]} / storage_options" if key else "storage_options"


def resolve(
    options: Mapping[str, Any] | None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Normalised options: canonical key names, environment filled in where unset."""
    env = os.environ if env is None else env
    given = {str(k).lower(): str(v) for k, v in (options or {}).items() if v is not None}
    out: dict[str, str] = {}
    for key, aliases in _ALIASES.items():
        for name in (key, *aliases):
            if name in given:
                out[key] = given.pop(name)
                break
    for key, names in _ENV.items():
        if key not in out:
            value = next((env[n] for n in names if env.get(n)), None)
            if value:
                out[key] = value
    out.update(given)  # anything else goes to delta-rs as given
    return out


def account_of(location: Location, options: Mapping[str, str]) -> str | None:
    return location.account or options.get("azure_storage_account_name")


def _http(endpoint: str | None) -> bool:
    return endpoint is not None and endpoint.startswith("http://")


def delta_storage_options(location: Location, options: Mapping[str, str]) -> dict[str, str]:
    """Options for delta-rs (object_store key names)."""
    out = {k: v for k, v in options.items() if k != "gcs_endpoint"}
    if location.cloud == "s3":
        if _http(out.get("aws_endpoint_url")):
            out.setdefault("aws_allow_http", "true")
        out.setdefault("aws_region", "us-east-1")
        # Commits are made safe by S3's conditional writes (If-None-Match), not a lock table.
        out.setdefault("aws_conditional_put", "etag")
    elif location.cloud == "azure":
        account = account_of(location, out)
        if account:
            out["azure_storage_account_name"] = account
        if _http(out.get("azure_storage_endpoint")):
            out.setdefault("allow_http", "true")
    elif location.cloud == "gcs" and "google_application_credentials" in out:
        out["google_service_account"] = out.pop("google_application_credentials")
    return out
