"""Start moto's S3 server on :9000 and create the stack's bucket(s) once it answers.

    hygge-objectstore            run the server (PID 1: SIGTERM stops it)
    hygge-objectstore --check    healthy once every bucket exists (the healthcheck)

Buckets: HYGGE_BUCKETS (comma-separated, default hygge-lake). Credentials: whatever the
clients send (the emulator accepts any); the workers take theirs from .env.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

PORT = int(os.environ.get("OBJECTSTORE_PORT", "9000"))
BUCKETS = [b for b in os.environ.get("HYGGE_BUCKETS", "hygge-lake").split(",") if b]
URL = f"http://127.0.0.1:{PORT}"


def request(method: str, path: str) -> int:
    req = urllib.request.Request(URL + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def healthy() -> bool:
    return all(request("HEAD", f"/{b}") == 200 for b in BUCKETS)


def main() -> int:
    server = subprocess.Popen(["moto_server", "-H", "0.0.0.0", "-p", str(PORT)])
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    deadline = time.monotonic() + 60
    while request("GET", "/") == 0:
        if server.poll() is not None or time.monotonic() > deadline:
            print("objectstore: moto_server did not start", file=sys.stderr)
            server.kill()
            return 1
        time.sleep(0.2)
    for bucket in BUCKETS:
        status = request("PUT", f"/{bucket}")
        print(f"objectstore: bucket {bucket}: HTTP {status}", flush=True)
    return server.wait()


if __name__ == "__main__":
    sys.exit(0 if healthy() else 1) if "--check" in sys.argv else sys.exit(main())
