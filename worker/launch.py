"""`hygge worker` and `hygge flower`: start a Celery worker, or Flower, in this process.

Flower shows every task's name, state, worker and error text (hosts, users, databases), so
`hygge flower` never starts open by accident: it needs an auth option (`--basic-auth=user:pw`,
`--auth=...` with an OAuth provider, or FLOWER_BASIC_AUTH / FLOWER_AUTH in the environment),
unless the user asks for an open Flower with `--unsafe-no-auth`, which then listens on
127.0.0.1 only. Without `--address` it listens on 127.0.0.1 either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hygge.errors import ConfigError

UNSAFE_NO_AUTH = "--unsafe-no-auth"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_AUTH_OPTIONS = ("basic-auth", "basic_auth", "auth")
_AUTH_VARIABLES = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH")
_TRUE = ("1", "true", "yes", "on")


def run_worker(args: list[str]) -> None:
    """Run a Celery worker in this process (so it is PID 1 in a container and gets SIGTERM)."""
    from hygge import logs, registry
    from worker.app import app

    logs.log_format(None, os.environ)  # a wrong HYGGE_LOG_FORMAT fails here, clearly
    registry.load_plugins()  # a wrong HYGGE_PLUGINS fails here, not in the first task
    argv = ["worker", *args]
    if not any(a in ("-l", "--loglevel") or a.startswith("--loglevel=") for a in args):
        argv += ["--loglevel", "INFO"]
    app.worker_main(argv)


HELP_FLAGS = ("--help", "-h")
CONF = str(Path(__file__).with_name("flowerconfig.py"))


def run_flower(args: list[str]) -> None:
    """Run Flower on hygge's app (`celery --app worker.app flower` in one word), never open
    unless asked; raises ConfigError (before anything starts) when it would be. Its task list
    names tasks by flow and shows hygge's columns (worker/flowerconfig.py) unless --conf says
    otherwise. `--help` prints hygge's word on auth, then Flower's own options."""
    if any(a in HELP_FLAGS for a in args):
        print(FLOWER_HELP)
        argv = ["--help"]
    else:
        argv = flower_args(args, os.environ)
    from worker.app import app

    app.start(["flower", *argv])


FLOWER_HELP = f"""Usage: hygge flower [FLOWER OPTIONS]

Start Flower on hygge's workers, never open by accident: it needs --basic-auth=user:password
(or FLOWER_BASIC_AUTH in the environment, or --auth with an OAuth provider). For a local look
only, {UNSAFE_NO_AUTH} starts an open Flower, on 127.0.0.1 only. Without --address it listens
on 127.0.0.1. The task list names each task by its flow (a partition: flow#i/n) and shows its
state, progress or result, retries, worker and runtime (--tasks_columns changes the columns).
Flower's own options follow.
"""


def flower_args(args: list[str], env: Mapping[str, str]) -> list[str]:
    """The Flower command line for `hygge flower ARGS`: checked, with the default address."""
    unsafe = UNSAFE_NO_AUTH in args
    args = [a for a in args if a != UNSAFE_NO_AUTH]
    address = _option(args, "address")
    has_auth = any(_option(args, name) for name in _AUTH_OPTIONS) or any(
        env.get(v) for v in _AUTH_VARIABLES
    )
    open_api = (env.get("FLOWER_UNAUTHENTICATED_API") or "").lower() in _TRUE
    if not unsafe:
        if not has_auth:
            raise ConfigError(
                "refusing to start Flower without authentication: it would show every task's "
                "name, state, worker and error text to anyone who can reach it",
                hint="pass --basic-auth=user:password (or set FLOWER_BASIC_AUTH, or use "
                f"--auth with an OAuth provider); for a local look only, {UNSAFE_NO_AUTH} "
                "starts an open Flower on 127.0.0.1",
            )
        if open_api:
            raise ConfigError(
                "refusing to start Flower: FLOWER_UNAUTHENTICATED_API is set, which opens its "
                "API without credentials",
                hint=f"unset it (the API takes the same credentials), or use {UNSAFE_NO_AUTH}",
            )
    elif address and address not in LOOPBACK:
        raise ConfigError(
            f"refusing to start an open Flower ({UNSAFE_NO_AUTH}) on --address={address}: "
            "an open Flower listens on 127.0.0.1 only",
            hint="drop --address, or configure --basic-auth to listen elsewhere",
        )
    if not address:
        args.append("--address=127.0.0.1")
    if not _option(args, "conf"):
        args.append(f"--conf={CONF}")
    return args


def _option(args: list[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in `args`, or None."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
        if arg == f"--{name}" and i + 1 < len(args):
            return args[i + 1]
    return None
