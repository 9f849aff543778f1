"""The container and Kubernetes files pass the offline validators, the validators catch the
mistakes that matter (so a green run means something), and the resolved settings keep the
promises the docs make: scalable workers, warm shutdown time, no eviction, a closed Flower."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VALIDATE = ROOT / "deploy" / "scripts" / "validate.sh"
CHECKS = [
    "hadolint Dockerfile",
    "compose file against the compose spec",
    "compose config with .env.example",
    "kubernetes manifests (kubernetes-validate --strict)",
    "KEDA ScaledObject schema",
]


def validate(root: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # The validators are console scripts of the `dev` extra: beside this Python (a venv's bin/
    # is not on PATH when CI calls .venv/bin/python directly).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        ["bash", str(VALIDATE), str(root)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PATH": path},
    )


def test_validators_pass_on_the_repository() -> None:
    result = validate()
    assert result.returncode == 0, result.stdout + result.stderr
    for check in CHECKS:
        assert f"ok    {check}" in result.stdout, result.stdout


def _copy_tree(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    for name in ["Dockerfile", "docker-compose.yml", ".env.example"]:
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "deploy", root / "deploy")
    return root


# Each mistake breaks a promise of the issue; the named checks (and only those) must catch it.
MISTAKES = {
    "worker not PID 1 (shell-form CMD)": (
        "Dockerfile",
        'CMD ["hygge", "worker", "--loglevel=INFO"]',
        "CMD hygge worker --loglevel=INFO",
        {"hadolint Dockerfile"},
    ),
    "misspelt stop_grace_period": (
        "docker-compose.yml",
        "stop_grace_period:",
        "stop_grace_perod:",
        {"compose file against the compose spec", "compose config with .env.example"},
    ),
    "misspelt terminationGracePeriodSeconds": (
        "deploy/kubernetes/base/worker.yaml",
        "terminationGracePeriodSeconds:",
        "terminationGracePeriodSecond:",
        {"kubernetes manifests (kubernetes-validate --strict)"},
    ),
    "a grace period in .env.example that is no duration": (
        ".env.example",
        "HYGGE_STOP_GRACE_PERIOD=120s",
        "HYGGE_STOP_GRACE_PERIOD=2 minutes",
        {"compose config with .env.example"},
    ),
    "KEDA trigger without listName": (
        "deploy/kubernetes/base/scaledobject.yaml",
        "listName:",
        "listname:",
        {"KEDA ScaledObject schema"},
    ),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_validators_catch_mistakes(tmp_path: Path, mistake: str) -> None:
    relative, old, new, checks = MISTAKES[mistake]
    root = _copy_tree(tmp_path)
    path = root / relative
    text = path.read_text()
    assert old in text, f"{relative} no longer contains {old!r}: update this test"
    path.write_text(text.replace(old, new))

    result = validate(root)
    assert result.returncode == 1, result.stdout
    for check in checks:
        assert f"FAIL  {check}" in result.stdout, result.stdout
    for other in set(CHECKS) - checks:
        assert f"ok    {other}" in result.stdout, result.stdout


def _seconds(duration: str | int) -> float:
    """Compose durations such as '2m30s' or '120s' in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(duration))
    assert parts, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


@pytest.fixture(scope="module")
def compose_config() -> dict:
    """docker-compose.yml as Compose resolves it with .env.example (deploy/scripts/validate.sh
    checks the same resolution against the compose spec)."""
    script = ROOT / "deploy" / "scripts" / "compose_config.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--env-file",
            str(ROOT / ".env.example"),
            "docker-compose.yml",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_keeps_its_promises(compose_config: dict) -> None:
    services = compose_config["services"]
    worker, redis, flower = services["worker"], services["redis"], services["flower"]
    # Scalable: no fixed name, no host port.
    assert "container_name" not in worker and "ports" not in worker
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert _seconds(worker["stop_grace_period"]) >= 60
    assert worker["command"][:2] == ["hygge", "worker"]
    # Share-nothing: no data volume on a worker; outputs go to the stack's object store
    # (moto, built from PyPI on hygge's base image: no other image), endpoint and credentials
    # from the environment (.env), the samples' lake on it.
    assert not worker.get("volumes"), worker.get("volumes")
    assert worker["depends_on"]["objectstore"]["condition"] == "service_healthy"
    env = worker["environment"]
    assert env["AWS_ENDPOINT_URL"] == "http://objectstore:9000"
    assert env["HYGGE_SAMPLES_LAKE"].startswith("s3://")
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    store = services["objectstore"]
    assert (
        "image" in store and store["build"]["dockerfile"] == "deploy/docker/objectstore.Dockerfile"
    )
    assert "ports" not in store
    dockerfile = (ROOT / "deploy" / "docker" / "objectstore.Dockerfile").read_text()
    assert "ARG BASE_IMAGE" in dockerfile and "moto[server]" in dockerfile
    # Redis: persistence on a volume, refuses writes rather than evicting queued flows.
    command = redis["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data:rw") or "redis-data" in str(v) for v in redis["volumes"])
    assert "healthcheck" in redis
    # Flower: loopback only, credentials from the environment, checked by hygge-flower.
    assert flower["command"] == ["hygge-flower"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"]), flower["ports"]
    assert "FLOWER_BASIC_AUTH" in flower["environment"]
    assert "FLOWER_UNAUTHENTICATED_API" not in flower["environment"]


def test_env_example_covers_every_setting() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - documented == set(), "settings missing from .env.example"
    assert documented - used == set(), ".env.example lists settings the compose file ignores"


def test_dockerfile_runs_the_worker_as_pid_1_and_non_root() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    runtime = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    cmd = [line for line in runtime if line.startswith("CMD ")][-1]
    assert json.loads(cmd[4:])[:2] == ["hygge", "worker"], "CMD must be exec form"
    user = [line for line in runtime if line.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] not in ("0", "root")
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert lines[0].startswith("ARG BASE_IMAGE=")


def test_kubernetes_keeps_its_promises() -> None:
    base = ROOT / "deploy" / "kubernetes" / "base"
    worker = yaml.safe_load((base / "worker.yaml").read_text())
    pod = worker["spec"]["template"]["spec"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = compose["services"]["worker"]["stop_grace_period"]
    default = re.search(r":-([^}]+)\}", grace).group(1)
    assert pod["terminationGracePeriodSeconds"] >= _seconds(default)
    assert pod["securityContext"]["runAsNonRoot"] is True

    flower_docs = list(yaml.safe_load_all((base / "flower.yaml").read_text()))
    env = flower_docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    auth = next(e for e in env if e["name"] == "FLOWER_BASIC_AUTH")
    assert auth["valueFrom"]["secretKeyRef"]["name"] == "hygge-flower"
    assert "optional" not in auth["valueFrom"]["secretKeyRef"]
    assert {d["kind"] for d in flower_docs} == {"Deployment", "Service"}
    assert flower_docs[1]["spec"]["type"] == "ClusterIP"

    redis = list(yaml.safe_load_all((base / "redis.yaml").read_text()))
    statefulset = next(d for d in redis if d["kind"] == "StatefulSet")
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"

    scaled = yaml.safe_load((base / "scaledobject.yaml").read_text())
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis"
    # hygge's Celery queue is the Redis list KEDA must watch.
    from worker.app import app

    assert trigger["metadata"]["listName"] == app.conf.task_default_queue
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["scaleTargetRef"]["name"] == worker["metadata"]["name"]
