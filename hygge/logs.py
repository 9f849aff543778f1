"""Logging for people and for log collectors: text (the default) or one JSON object per line.

`--log-format json` on the CLI, or HYGGE_LOG_FORMAT=json in the environment (workers read the
same variable, see worker/app.py), turns every log record into a JSON object on stderr, and
`hygge run`'s progress into JSON events on stdout (see `JsonProgress`): flow started, progress,
retrying (with the reason and the count), committed, failed, skipped, and the run's end.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal, TextIO

from hygge.progress import FlowState
from hygge.report import FlowReport
from hygge.secrets import mask_url

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
ENV_VAR = "HYGGE_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Our own loggers (`hygge.*`): what each flow is doing, which path a connector took (-v).
_LIBRARY_NOISE = ("asyncio", "urllib3", "botocore", "s3fs", "fsspec", "azure")


def log_format(chosen: str | None, env: Mapping[str, str]) -> LogFormat:
    """The option if given, else HYGGE_LOG_FORMAT, else text; a wrong value is a ConfigError."""
    from hygge.errors import ConfigError

    value = (chosen or env.get(ENV_VAR) or "text").strip().lower()
    for known in FORMATS:
        if value == known:
            return known
    source = "--log-format" if chosen else ENV_VAR
    raise ConfigError(
        f"{source}={value!r} is not a log format", hint=f"use one of {', '.join(FORMATS)}"
    )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line: time, level, logger, message (URLs masked), and the
    exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_url(record.getMessage()),
        }
        # structured extras, when a caller gives them (`checks`: hygge.checks' outcomes)
        for key in ("flow", "event", "run_id", "checks"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = mask_url(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is *now*: the live table redirects it while it draws,
    so a warning prints above the table instead of leaving copies of it on screen."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def setup(verbose: bool = False, quiet: bool = False, fmt: LogFormat = "text") -> None:
    """Configure the root logger for a CLI command.

    Default: warnings and errors. `verbose`: hygge's own debug lines (what each flow does,
    which path a connector takes) and info from the libraries, never their debug chatter
    (asyncio's selector lines say nothing to a user). `quiet`: errors only."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    logging.getLogger("hygge").setLevel(
        logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    )
    for name in _LIBRARY_NOISE:
        logging.getLogger(name).setLevel(logging.WARNING)


class JsonProgress:
    """`hygge run --log-format json`: one JSON object per flow event on `out` (stdout), in
    place of the human lines: started, progress (every `interval` s), retrying (reason and
    count), committed, failed, skipped. The same callable shape as display.LiveProgress."""

    def __init__(self, out: IO[str] | None = None, interval: float = 10.0) -> None:
        self.out = out
        self.interval = interval
        self.latest: dict[str, FlowReport] = {}
        self._last: dict[str, float] = {}

    def __enter__(self) -> JsonProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __call__(self, report: FlowReport) -> None:
        previous = self.latest.get(report.flow)
        self.latest[report.flow] = report
        now = time.monotonic()
        state = FlowState(report.state)
        changed = previous is None or previous.state != state
        if state == FlowState.RUNNING:
            if changed:
                self._last[report.flow] = now
                self.emit("flow_started", report)
            elif report.rows and now - self._last.get(report.flow, now) >= self.interval:
                self._last[report.flow] = now
                self.emit("flow_progress", report)
        elif state == FlowState.PENDING:
            if report.message and (previous is None or previous.message != report.message):
                self.emit("flow_waiting", report)  # e.g. for another run's lock
        elif changed and state in _EVENTS:
            self.emit(_EVENTS[state], report)

    def emit(self, event: str, report: FlowReport, **extra: Any) -> None:
        self.write({"event": event, **report_fields(report), **extra})

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": now_iso(), **entry}, default=str)
        print(line, file=self.out or sys.stdout, flush=True)


_EVENTS = {
    FlowState.RETRYING: "flow_retrying",
    FlowState.SUCCESS: "flow_committed",
    FlowState.FAILED: "flow_failed",
    FlowState.SKIPPED: "flow_skipped",
}


def report_fields(report: FlowReport) -> dict[str, Any]:
    """A FlowReport as JSON-ready fields (secrets masked in every text)."""
    fields: dict[str, Any] = {
        "flow": report.flow,
        "state": str(report.state),
        "rows": report.rows,
        "batches": report.batches,
        "seconds": round(report.seconds, 3),
        "rows_per_second": round(report.rows_per_second, 1),
        "attempt": report.attempt,
    }
    if report.total_rows is not None:
        fields["total_rows"] = report.total_rows
        if report.total_rows:
            fields["percent"] = round(min(100.0, 100 * report.rows / report.total_rows), 1)
        rate = report.rows_per_second
        if rate > 0 and report.total_rows >= report.rows:
            fields["seconds_left"] = round((report.total_rows - report.rows) / rate, 1)
    if report.message:
        fields["message"] = mask_url(report.message)
    if report.state == FlowState.RETRYING:
        fields["retry"] = report.attempt
    if report.state == FlowState.SUCCESS:
        fields["data_bytes"] = report.memory_bytes
    if report.checks:  # what the flow's checks decided (hygge/gate.py)
        fields["checks"] = mask_url(report.checks)
    return fields
