"""Object-store URLs: which cloud, which bucket or container, which key."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from hygge.errors import ConfigError
from hygge.secrets import mask_url

# scheme -> cloud. `az://container/key` names the account in settings or the environment;
# `abfs[s]://container@account.dfs.core.windows.net/key` names it in the URL (ADLS Gen2).
OBJECT_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "azure": "azure",
    "abfs": "azure",
    "abfss": "azure",
}


def is_object_url(path: str) -> bool:
    """True for an object-store URL (`s3://...`); False for a local path or `file://`."""
    return "://" in path and path.split("://", 1)[0].lower() in OBJECT_SCHEMES


# Spellings of one scheme: a destination is compared, locked and journalled under one.
SCHEME_ALIASES = {"s3a": "s3", "gcs": "gs", "azure": "az"}


def normalize_url(url: str) -> str:
    """The one spelling of an object-store URL: `s3a://B//x/` -> `s3://B/x/`; schemes
    lowercased and aliases folded, empty segments dropped (a trailing slash is kept: it
    marks a prefix). `.` and `..` segments are refused: object stores take them literally
    as part of a key, so they would name another place than the one meant."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    scheme = scheme.lower()
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    netloc, _, path = rest.partition("/")
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ConfigError(
            f"{mask_url(url)}: '.' and '..' are not allowed in an object-store path",
            hint="write the path without them (object stores do not resolve them)",
        )
    key = "/".join(segments)
    trailing = "/" if key and path.endswith("/") else ""
    return f"{scheme}://{netloc}/{key}{trailing}" if key else f"{scheme}://{netloc}"


def join(url: str, *parts: str) -> str:
    """`join("s3://b/x", "y", "z.parquet")` -> `s3://b/x/y/z.parquet`."""
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


@dataclass(frozen=True)
class Location:
    """A parsed object-store URL."""

    url: str  # as the user wrote it, without a trailing slash
    scheme: str
    cloud: str  # s3 | azure | gcs
    bucket: str  # bucket (S3, GCS) or container (Azure)
    key: str  # the object key or prefix inside the bucket, no leading slash
    account: str | None = None  # Azure storage account when the URL names it

    @classmethod
    def parse(cls, url: str) -> Location:
        scheme = url.split("://", 1)[0].lower()
        if scheme in OBJECT_SCHEMES:
            url = normalize_url(url)
            scheme = url.split("://", 1)[0]
        if scheme not in OBJECT_SCHEMES:
            raise ConfigError(
                f"unsupported storage scheme '{scheme}://' in {mask_url(url)}",
                hint="use s3://, gs://, az://, abfs://, abfss://, file:// or a local path",
            )
        parts = urlsplit(url)
        account = None
        bucket = parts.netloc
        if "@" in bucket:  # abfss://container@account.dfs.core.windows.net
            bucket, host = bucket.split("@", 1)
            account = host.split(".", 1)[0]
        if not bucket:
            raise ConfigError(
                f"{mask_url(url)} names no bucket or container",
                hint=f"write {scheme}://BUCKET/PATH",
            )
        return cls(
            url=url.rstrip("/"),
            scheme=scheme,
            cloud=OBJECT_SCHEMES[scheme],
            bucket=bucket,
            key=parts.path.strip("/"),
            account=account,
        )

    @property
    def fs_path(self) -> str:
        """The path pyarrow's filesystems take: `bucket/key`."""
        return f"{self.bucket}/{self.key}" if self.key else self.bucket

    def child(self, fs_path: str) -> str:
        """The URL of a `bucket/key` path listed under this location."""
        key = fs_path.split("/", 1)[1] if "/" in fs_path else ""
        root = self.url[: len(self.url) - len(self.key)].rstrip("/") if self.key else self.url
        return f"{root}/{key}"
