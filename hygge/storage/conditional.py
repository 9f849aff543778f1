"""Conditional writes of one small object on each cloud: the primitives of the run lock.

- `create(body)`: only if absent (S3 and Azure `If-None-Match: *`, GCS `ifGenerationMatch=0`);
- `replace(body, tag)` / `delete(tag)`: only if unchanged since `tag` (an ETag, or a GCS
  generation);
- `read()`: the body, its tag and its age by the store's own clock (the response's `Date`
  against the object's last modification), so machines' clocks never matter.

A failed condition raises `Taken`. pyarrow's filesystems expose no conditions, so S3 speaks
through botocore, and Azure Blob and GCS through their REST APIs over the standard library:
Azure signs with the account key (Shared Key) or, without one, a Microsoft Entra token from
azure-identity's default chain (OneLake: always a token, at its Blob endpoint); GCS uses
Google's application default credentials (google-auth), or none for an emulator
(`STORAGE_EMULATOR_HOST`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from hygge.storage import onelake
from hygge.storage.credentials import account_of
from hygge.storage.location import Location
from hygge.storage.onelake import is_onelake
from hygge.storage.s3 import s3_client

TIMEOUT = 30


class Taken(Exception):
    """The condition failed: the object exists, or changed since the tag given."""


class HttpError(Exception):
    """A store's answer other than success (its text is what `storage_error` classifies)."""

    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(f"HTTP {status} {code}: {text[:300]}")
        self.status = status
        self.transient = status >= 500 or status in (408, 429)


@dataclass
class Held:
    """The lock object as read: its body, its tag, how long ago it was last written."""

    body: dict[str, Any]
    tag: str
    age: float


class ConditionalObject:
    """One object on one cloud, written only under conditions (see the module docstring)."""

    permissions = "write, read and delete objects beside the dataset"

    def create(self, body: bytes) -> str:
        raise NotImplementedError

    def replace(self, body: bytes, tag: str) -> str:
        raise NotImplementedError

    def read(self) -> Held | None:
        raise NotImplementedError

    def delete(self, tag: str) -> None:
        raise NotImplementedError

    def transient(self, exc: BaseException) -> bool:
        """A fault worth retrying (the network, the store busy), not a refusal."""
        return isinstance(exc, OSError) or bool(getattr(exc, "transient", False))


def conditional_object(url: str, options: Mapping[str, str]) -> ConditionalObject:
    """The conditional object at `url` (s3://, az:// or abfss://, gs://)."""
    location = Location.parse(url)
    if location.cloud == "s3":
        return S3Object(location, options)
    if location.cloud == "azure":
        return AzureBlob(location, options)
    return GcsObject(location, options)


def _body(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- S3 (botocore) -------------------------------------------------------------------------
_S3_TAKEN = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_S3_GONE = ("NoSuchKey", "404", "NotFound")


class S3Object(ConditionalObject):
    permissions = "s3:PutObject, s3:GetObject and s3:DeleteObject beside the dataset"

    def __init__(self, location: Location, options: Mapping[str, str]) -> None:
        self.location = location
        self.client = s3_client(options, read_timeout=30)

    def _put(self, body: bytes, **condition: str) -> str:
        from botocore.exceptions import ClientError

        try:
            done = self.client.put_object(
                Bucket=self.location.bucket, Key=self.location.key, Body=body, **condition
            )
        except ClientError as exc:
            if _s3_code(exc) in (*_S3_TAKEN, *_S3_GONE):
                raise Taken(str(exc)) from exc
            raise
        return str(done["ETag"])

    def create(self, body: bytes) -> str:
        return self._put(body, IfNoneMatch="*")

    def replace(self, body: bytes, tag: str) -> str:
        return self._put(body, IfMatch=tag)

    def read(self) -> Held | None:
        from botocore.exceptions import ClientError

        try:
            got = self.client.get_object(Bucket=self.location.bucket, Key=self.location.key)
        except ClientError as exc:
            if _s3_code(exc) in _S3_GONE:
                return None
            raise
        now = parsedate_to_datetime(got["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - got["LastModified"]).total_seconds()
        return Held(_body(got["Body"].read()), str(got["ETag"]), age)

    def delete(self, tag: str) -> None:
        self.client.delete_object(Bucket=self.location.bucket, Key=self.location.key, IfMatch=tag)

    def transient(self, exc: BaseException) -> bool:
        from botocore.exceptions import ClientError

        return not isinstance(exc, ClientError) or _s3_code(exc) in ("500", "503", "SlowDown")


def _s3_code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code") or status or "")


# -- plain HTTP ------------------------------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


def _send(
    method: str, url: str, headers: Mapping[str, str], body: bytes | bytearray | None
) -> Answer:
    """One request; an error status raises `HttpError` (412/409: `Taken`)."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        code = exc.headers.get("x-ms-error-code") or _json_reason(text) or str(exc.reason)
        if exc.code in (409, 412):
            raise Taken(f"HTTP {exc.code} {code}") from None
        raise HttpError(exc.code, code, text) from None
    except urllib.error.URLError as exc:  # refused, unreachable, timed out
        host = urlsplit(url).netloc
        raise ConnectionError(f"could not connect to {host}: {exc.reason}") from None


def _json_reason(text: str) -> str:
    try:
        return str(json.loads(text)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return ""


# -- Azure Blob (REST) ----------------------------------------------------------------------
AZURE_VERSION = "2021-12-02"
AZURE_SCOPE = "https://storage.azure.com/.default"
ONELAKE_PERMISSIONS = (
    "write access to the workspace (Contributor), signed in with Microsoft Entra: az login, a "
    "managed identity, or a service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, "
    "AZURE_CLIENT_SECRET)"
)


class AzureBlob(ConditionalObject):
    """A block blob, signed with the account key (Shared Key) or an Entra token."""

    permissions = "write, read and delete blobs beside the dataset (Storage Blob Data Contributor)"

    def __init__(self, location: Location, options: Mapping[str, str]) -> None:
        self.account = account_of(location, options) or ""
        self.key = options.get("azure_storage_account_key")
        endpoint = options.get("azure_storage_endpoint")
        # An emulator (Azurite) or a custom endpoint names the account in its path.
        base = endpoint.rstrip("/") if endpoint else f"https://{self.account}.blob.core.windows.net"
        if is_onelake(location.url):
            # OneLake: its Blob endpoint (account `onelake`, the workspace as the container)
            # and Entra tokens only; a key or endpoint in the environment is another account's.
            self.key, base = None, onelake.blob_endpoint(location.url)
            self.permissions = ONELAKE_PERMISSIONS
        self.url = f"{base}/{location.bucket}/{quote(location.key, safe='/~')}"
        self.options = options
        self._token: Any = None

    def request(
        self,
        method: str,
        query: Mapping[str, str],
        extra: Mapping[str, str],
        body: bytes | bytearray | None,
    ) -> Answer:
        """One signed request on this blob with `query` parameters (e.g. comp=block)."""
        url = f"{self.url}?{urlencode(dict(query))}" if query else self.url
        length = len(body) if body is not None else 0
        return _send(method, url, self._headers(method, extra, length, query), body)

    def _headers(
        self,
        method: str,
        extra: Mapping[str, str],
        length: int,
        query: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        headers = {
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": AZURE_VERSION,
            **extra,
        }
        if method == "PUT":
            headers["Content-Length"] = str(length)
        if self.key:
            signature = self._sign(method, headers, query or {})
            headers["Authorization"] = f"SharedKey {self.account}:{signature}"
        else:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        return headers

    def _sign(self, method: str, headers: Mapping[str, str], query: Mapping[str, str]) -> str:
        """Shared Key (the Blob service's documented string to sign)."""
        h = {k.lower(): v for k, v in headers.items()}
        length = h.get("content-length", "")
        standard = [
            method,
            h.get("content-encoding", ""),
            h.get("content-language", ""),
            "" if length == "0" else length,
            h.get("content-md5", ""),
            h.get("content-type", ""),
            "",  # Date: x-ms-date is sent instead
            h.get("if-modified-since", ""),
            h.get("if-match", ""),
            h.get("if-none-match", ""),
            h.get("if-unmodified-since", ""),
            h.get("range", ""),
        ]
        ms = "".join(f"{k}:{h[k].strip()}\n" for k in sorted(h) if k.startswith("x-ms-"))
        resource = f"/{self.account}{urlsplit(self.url).path}" + "".join(
            f"\n{k.lower()}:{query[k]}" for k in sorted(query, key=str.lower)
        )
        text = "\n".join(standard) + "\n" + ms + resource
        assert self.key is not None
        digest = hmac.new(base64.b64decode(self.key), text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _bearer(self) -> str:
        """A Microsoft Entra token: a service principal from storage_options, else Azure
        Identity's default chain (environment, workload identity, Azure CLI, managed
        identity), as pyarrow's Azure filesystem signs in without a key."""
        if self._token is None or self._token.expires_on - 300 < time.time():
            import azure.identity as identity

            # It logs every failed sign-in at WARNING, credential by credential; the error
            # raised here says it once, with what to do.
            logging.getLogger("azure.identity").setLevel(logging.ERROR)

            o = self.options
            if o.get("azure_client_id") and o.get("azure_client_secret"):
                credential: Any = identity.ClientSecretCredential(
                    o.get("azure_tenant_id") or "", o["azure_client_id"], o["azure_client_secret"]
                )
            elif o.get("azure_client_id"):  # a user-assigned managed identity, as pyarrow takes it
                credential = identity.DefaultAzureCredential(
                    managed_identity_client_id=o["azure_client_id"]
                )
            else:
                credential = identity.DefaultAzureCredential()
            self._token = credential.get_token(AZURE_SCOPE)
        return str(self._token.token)

    def _put(self, body: bytes, condition: Mapping[str, str]) -> str:
        extra = {
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/json",
            **condition,
        }
        return str(self.request("PUT", {}, extra, body).headers["ETag"])

    def create(self, body: bytes) -> str:
        return self._put(body, {"If-None-Match": "*"})

    def replace(self, body: bytes, tag: str) -> str:
        try:
            return self._put(body, {"If-Match": tag})
        except HttpError as exc:
            if exc.status == 404:  # released meanwhile
                raise Taken(str(exc)) from exc
            raise

    def read(self) -> Held | None:
        try:
            answer = self.request("GET", {}, {}, None)
        except HttpError as exc:
            if exc.status == 404:
                return None
            raise
        age = _age(answer.headers["Date"], parsedate_to_datetime(answer.headers["Last-Modified"]))
        return Held(_body(answer.body), str(answer.headers["ETag"]), age)

    def delete(self, tag: str) -> None:
        self.request("DELETE", {}, {"If-Match": tag}, None)

    def break_lease(self) -> None:
        """End whatever lease is held on this blob, at once (`Taken` when there is none)."""
        extra = {"x-ms-lease-action": "break", "x-ms-lease-break-period": "0"}
        self.request("PUT", {"comp": "lease"}, extra, None)


def _age(date: str, modified: datetime) -> float:
    return (parsedate_to_datetime(date) - modified).total_seconds()


# -- Google Cloud Storage (JSON API) --------------------------------------------------------
GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"


class GcsObject(ConditionalObject):
    """An object written with generation preconditions; its generation is its tag."""

    permissions = "storage.objects.create, get and delete beside the dataset"

    def __init__(self, location: Location, options: Mapping[str, str]) -> None:
        endpoint = options.get("gcs_endpoint")
        if endpoint:  # an emulator: plain HTTP, no sign-in (as pyarrow does)
            parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
            self.base = f"{parts.scheme or 'http'}://{parts.netloc}"
        else:
            self.base = "https://storage.googleapis.com"
        self.anonymous = bool(endpoint)
        self.bucket = quote(location.bucket, safe="")
        self.name = location.key
        self.options = options
        self._credentials: Any = None

    def _auth(self) -> dict[str, str]:
        if self.anonymous:
            return {}
        import google.auth
        import google.auth.transport.urllib3
        import urllib3
        from google.oauth2 import service_account

        # google-auth is partly untyped: its calls go through Any.
        accounts: Any = service_account.Credentials
        transport: Any = google.auth.transport.urllib3
        if self._credentials is None:
            path = self.options.get("google_application_credentials")
            if path:
                self._credentials = accounts.from_service_account_file(path, scopes=[GCS_SCOPE])
            else:
                self._credentials, _ = google.auth.default(scopes=[GCS_SCOPE])
        if not self._credentials.valid:
            self._credentials.refresh(transport.Request(urllib3.PoolManager()))
        return {"Authorization": f"Bearer {self._credentials.token}"}

    def _object_url(self, **query: str) -> str:
        url = f"{self.base}/storage/v1/b/{self.bucket}/o/{quote(self.name, safe='')}"
        return f"{url}?{urlencode(query)}" if query else url

    def _upload(self, body: bytes, generation: str) -> str:
        # A multipart upload (metadata and data in one request): GCS honours the
        # precondition on every kind of upload, fake-gcs-server only on this one.
        query = urlencode({"uploadType": "multipart", "ifGenerationMatch": generation})
        url = f"{self.base}/upload/storage/v1/b/{self.bucket}/o?{query}"
        boundary = "hygge-lock-boundary"
        meta = json.dumps({"name": self.name, "contentType": "application/json"})
        payload = (
            (
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
            ).encode()
            + body
            + f"\r\n--{boundary}--\r\n".encode()
        )
        headers = {"Content-Type": f"multipart/related; boundary={boundary}", **self._auth()}
        answer = _send("POST", url, headers, payload)
        return str(json.loads(answer.body)["generation"])

    def create(self, body: bytes) -> str:
        return self._upload(body, "0")

    def replace(self, body: bytes, tag: str) -> str:
        return self._upload(body, tag)

    def read(self) -> Held | None:
        try:
            meta = _send("GET", self._object_url(), self._auth(), None)
            info = json.loads(meta.body)
            generation = str(info["generation"])
            media = self._object_url(alt="media", generation=generation)
            data = _send("GET", media, self._auth(), None)
        except HttpError as exc:
            if exc.status == 404:
                return None  # released (or replaced between the two reads: read again)
            raise
        updated = datetime.fromisoformat(str(info["updated"]).replace("Z", "+00:00"))
        return Held(_body(data.body), generation, _age(meta.headers["Date"], updated))

    def delete(self, tag: str) -> None:
        try:
            _send("DELETE", self._object_url(ifGenerationMatch=tag), self._auth(), None)
        except HttpError as exc:
            if exc.status != 404:
                raise
