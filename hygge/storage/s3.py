"""botocore S3 clients, for what pyarrow's S3 filesystem does not expose: conditional writes
(the run lock, `lock.py`) and multipart uploads left open (`uploads.py`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

_clients: dict[tuple[str, float, bool], Any] = {}
_lock = threading.Lock()


def s3_client(
    options: Mapping[str, str], read_timeout: float = 60, *, sign_payload: bool = True
) -> Any:
    """A botocore S3 client for these resolved options (cached per process; botocore clients
    are thread-safe). `sign_payload=False`: no SHA-256 of request bodies, also over plain
    HTTP (an emulator, a MinIO without TLS), where botocore would hash every byte; a body
    still carries its CRC32 checksum, which the store verifies, and over HTTPS botocore
    signs no body anyway."""
    key = (json.dumps(dict(options), sort_keys=True), read_timeout, sign_payload)
    with _lock:
        client = _clients.get(key)
        if client is None:
            import botocore.session
            from botocore.config import Config

            o = options
            client = botocore.session.get_session().create_client(
                "s3",
                region_name=o.get("aws_region") or "us-east-1",
                endpoint_url=o.get("aws_endpoint_url"),
                aws_access_key_id=o.get("aws_access_key_id"),
                aws_secret_access_key=o.get("aws_secret_access_key"),
                aws_session_token=o.get("aws_session_token"),
                config=Config(
                    connect_timeout=5,
                    read_timeout=read_timeout,
                    retries={"max_attempts": 3},
                    max_pool_connections=16,
                    s3={"payload_signing_enabled": sign_payload},
                ),
            )
            _clients[key] = client
    return client
