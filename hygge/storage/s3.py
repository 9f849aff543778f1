"""botocore S3 clients, for what pyarrow's S3 filesystem does not expose: conditional writes
(the run lock, `lock.py`) and multipart uploads left open (`uploads.py`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

_clients: dict[tuple[str, float], Any] = {}
_lock = threading.Lock()


def s3_client(options: Mapping[str, str], read_timeout: float = 60) -> Any:
    """A botocore S3 client for these resolved options (cached per process; botocore clients
    are thread-safe)."""
    key = (json.dumps(dict(options), sort_keys=True), read_timeout)
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
                ),
            )
            _clients[key] = client
    return client
