"""The `hygge` command: thin wrappers that parse, call the library, and print.

The commands that start or talk to workers (`enqueue`, `status`, `worker`, `flower`) import the
distributed engine (`worker`, Celery, redis) when they are called, never before: `import hygge`
and `hygge run` stay light.

Over 400 lines: every command's options and their help live here, in one place a user's
`--help` mirrors; what is printed is built elsewhere (hygge/display.py the tables and lines,
hygge/logs.py JSON, hygge/outcome.py where flows are defined, hygge/exit_codes.py the codes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hygge import exit_codes, logs, outcome
from hygge.errors import HyggeError
from hygge.secrets import mask_logs, mask_url

if TYPE_CHECKING:
    from hygge.coordinator import Coordinator
    from hygge.report import FlowReport
    from worker.runs import RunStatus

app = typer.Typer(
    help="hygge moves data from Homes (sources) to Stores (destinations), batch by batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Exit codes: 0 ok; 1 a flow failed or was skipped; 2 the command line or flows.yml "
    "is wrong; 3 a destination is locked by another run; 130 interrupted (Ctrl-C).",
)
# No emoji codes: a message quoting `snowflake://` must not turn into a snowflake.
console = Console(emoji=False)
err_console = Console(stderr=True, soft_wrap=True, emoji=False)  # messages stay greppable

FlowsArg = Annotated[Path, typer.Argument(help="The flows.yml file.", show_default=False)]
FlowOpt = Annotated[
    list[str] | None, typer.Option("--flow", "-f", help="Only this flow (repeatable).")
]
FullRefreshOpt = Annotated[
    bool, typer.Option("--full-refresh", help="Incremental flows: forget state, reload all.")
]
PartitionsOpt = Annotated[
    bool, typer.Option("--partitions", help="Partitioned flows: a line for each partition too.")
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Say what each flow and connector does; show tracebacks."),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only errors (and the exit status).")
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text, or json: one JSON object per line for log collectors "
        f"(default: ${logs.ENV_VAR}, else text).",
        show_default=False,
    ),
]
_json_errors = False  # --log-format json: errors are JSON lines too


def fail(message: str, code: int = exit_codes.FAILED) -> NoReturn:
    if _json_errors:
        print(
            json.dumps(
                {"time": logs.now_iso(), "event": "error", "message": message, "exit_code": code}
            ),
            file=sys.stderr,
            flush=True,
        )
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Show a HyggeError as a clear message (a traceback only with --verbose), and exit with
    its code (hygge/exit_codes.py): 2 for a wrong flows.yml, 3 for a destination locked."""
    try:
        yield
    except HyggeError as exc:
        if verbose:
            _print_traceback(exc)
        fail(mask_url(str(exc)), exit_codes.for_error(exc))


def setup_logging(
    verbose: bool, quiet: bool = False, log_format: str | None = None
) -> logs.LogFormat:
    """Logging for this command; returns the log format (text or json) it chose."""
    global _json_errors
    try:
        fmt = logs.log_format(log_format, os.environ)
    except HyggeError as exc:
        fail(str(exc), exit_codes.USAGE)
    _json_errors = fmt == "json"
    logs.setup(verbose=verbose, quiet=quiet, fmt=fmt)
    mask_logs()  # every line masked, tracebacks included
    return fmt


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"hygge {version('hygge')}", highlight=False)
        except PackageNotFoundError:  # run from a checkout that was never installed
            console.print("hygge (version unknown: not installed)", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print hygge's version and exit."
        ),
    ] = False,
) -> None:
    """Options of `hygge` itself (before the command)."""


@app.command()
def run(
    flows_file: FlowsArg,
    flow: FlowOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Flows run at once.")
    ] = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and show the plan; move nothing.")
    ] = False,
    full_refresh: FullRefreshOpt = False,
    wait_for_lock: Annotated[
        bool,
        typer.Option(
            "--wait-for-lock",
            help="A flow already running elsewhere: wait for it to end (default: refuse it).",
        ),
    ] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Move the data of flows.yml in-process (no server needed)."""
    from hygge.coordinator import Coordinator
    from hygge.display import LiveProgress, print_summary, progress_interval, summary_table

    fmt = setup_logging(verbose, quiet, log_format)
    with user_errors(verbose):
        coordinator = Coordinator(
            flows_file,
            flows=flow,
            concurrency=concurrency,
            full_refresh=full_refresh,
            wait_for_lock=wait_for_lock,
        )
        if dry_run:
            _show_entities(coordinator, each=False)
            _show_plan(coordinator)
            _check_or_fail(coordinator, verbose)
            _show_part_notes(coordinator)
            console.print("[green]dry run: everything checks out; nothing was moved.[/]")
            return
        progress: LiveProgress | logs.JsonProgress = (
            logs.JsonProgress(interval=progress_interval())
            if fmt == "json"
            else LiveProgress(console, quiet=quiet)
        )
        started = time.perf_counter()
        try:
            with progress:
                coordinator.on_progress = _narrated(coordinator, progress) if verbose else progress
                result = coordinator.run()
        except KeyboardInterrupt:
            _interrupted(coordinator, progress, time.perf_counter() - started, fmt, quiet)
    _record_history(coordinator, result)
    where = outcome.flow_places(flows_file)
    failed = result.failed
    code = exit_codes.OK if result.ok else exit_codes.for_failures(f.exception for f in failed)
    if fmt == "json":
        assert isinstance(progress, logs.JsonProgress)
        outcome.json_summary(progress, result.results.values(), result.seconds, code, where)
    elif not quiet:
        table = summary_table(
            result.results.values(), _destinations(coordinator), total_seconds=result.seconds
        )
        print_summary(console, table)
        for warning in result.warnings:
            console.print(f"[yellow]warning:[/] {warning}", highlight=False)
        for report in result.results.values():
            if report.checks:  # what the flow's checks decided (hygge/gate.py)
                console.print(
                    f"checks of {report.flow}: {escape(str(report.checks))}", highlight=False
                )
    for report in failed:
        _report_failure(report.flow, report.error, where.get(report.flow))
        if verbose and report.exception is not None:
            _print_traceback(report.exception)
    if code != exit_codes.OK:
        raise typer.Exit(code)


def _narrated(
    coordinator: Coordinator, progress: Callable[[FlowReport], None]
) -> Callable[[FlowReport], None]:
    """-v: each flow's state changes in the log, with what it moves from where to where."""
    import logging

    log = logging.getLogger("hygge.run")
    states: dict[str, str] = {}

    def narrate(report: FlowReport) -> None:
        if states.get(report.flow) != report.state:
            states[report.flow] = report.state
            what = ""
            if report.state == "running":
                with contextlib.suppress(Exception):
                    what = ": " + _what(coordinator, report.flow.split("#", 1)[0])
            note = f" ({report.message})" if report.message else ""
            log.debug("flow '%s' %s%s%s", report.flow, report.state, what, note)
        progress(report)

    return narrate


def _interrupted(
    coordinator: Coordinator,
    progress: object,
    seconds: float,
    fmt: logs.LogFormat,
    quiet: bool,
) -> NoReturn:
    """Ctrl-C: what each flow got to (an unfinished flow committed nothing), then exit 130."""
    from hygge.display import print_summary, summary_table

    latest: dict[str, Any] = getattr(progress, "latest", {})
    reports = [latest[n] for n in coordinator.selected if n in latest]
    done = [r.flow for r in reports if r.ok]
    message = "interrupted (Ctrl-C): flows that had not finished committed nothing" + (
        f"; committed before: {', '.join(done)}" if done else ""
    )
    if fmt == "json" and isinstance(progress, logs.JsonProgress):
        outcome.json_summary(
            progress, reports, seconds, exit_codes.INTERRUPTED, {}, interrupted=True
        )
    elif not quiet:
        table = summary_table(
            reports, _destinations(coordinator), total_seconds=seconds, interrupted=True
        )
        print_summary(console, table)
    fail(message, exit_codes.INTERRUPTED)


@app.command()
def validate(
    flows_file: FlowsArg,
    workers: Annotated[
        bool,
        typer.Option(
            "--workers", help="Also apply what `hygge enqueue` requires (no unshared disk)."
        ),
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check flows.yml and every home and store it names; move nothing."""
    from hygge.config_checks import check_for_workers
    from hygge.coordinator import Coordinator

    setup_logging(verbose)
    with user_errors(verbose):
        coordinator = Coordinator(flows_file)
        if workers:
            check_for_workers(coordinator.config, coordinator.selected)
        _show_entities(coordinator, each=True)
        _check_or_fail(coordinator, verbose)
        _show_part_notes(coordinator)
    names = coordinator.selected
    console.print(f"[green]{flows_file}: {len(names)} flow(s) valid:[/] {', '.join(names)}")
    from hygge.schedule import upcoming

    for line in upcoming({n: coordinator.config.flows[n].options for n in names}):
        console.print(line, highlight=False, soft_wrap=True)


@app.command()
def state(
    flows_file: FlowsArg,
    flow: FlowOpt = None,
    reset: Annotated[
        list[str] | None,
        typer.Option("--reset", help="Forget this flow's state (repeatable)."),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Show (or reset) what incremental flows have loaded, as stored with their data."""
    from hygge.incremental import reset_states, state_table

    setup_logging(verbose)
    with user_errors(verbose):
        if reset:
            for name, existed in reset_states(flows_file, reset).items():
                console.print(f"{name}: " + ("state reset" if existed else "had no state"))
            return
        console.print(state_table(flows_file, flow))


@app.command()
def schema() -> None:
    """Print the JSON Schema of flows.yml (for editor completion)."""
    from hygge.schema import flows_json_schema

    console.print_json(json.dumps(flows_json_schema()))


ENQUEUE_HELP = (
    "Send one task per flow to Celery workers through Redis (HYGGE_BROKER_URL).\n\n"
    "It checks flows.yml as `validate` does (every flow, its settings, names and "
    "dependencies) but does NOT connect to homes and stores: the workers do, with their own "
    "environment and network. --check connects to each from here first, as `validate` does, "
    "and sends nothing if one fails."
)


@app.command(help=ENQUEUE_HELP)
def enqueue(
    flows_file: FlowsArg,
    flow: FlowOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the run live; exit 1 if a flow fails.")
    ] = False,
    full_refresh: FullRefreshOpt = False,
    partitions: PartitionsOpt = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Before sending, also check that every home and store can be reached from "
            "here, as `validate` does (with this machine's environment).",
        ),
    ] = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Send one task per flow to Celery workers through Redis (see ENQUEUE_HELP)."""
    from worker import client

    fmt = setup_logging(verbose, quiet, log_format)
    if check:
        from hygge.coordinator import Coordinator

        with user_errors(verbose):
            _check_or_fail(Coordinator(flows_file, flows=flow), verbose)
    with user_errors(verbose):
        run = client.enqueue(flows_file, flow, full_refresh=full_refresh)
    for note in run.notes:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)
    if fmt == "json":
        logs.JsonProgress().write(
            {"event": "run_enqueued", "run_id": run.run_id, "tasks": run.task_ids}
        )
    elif not quiet:
        _show_enqueued(run)
    if wait:
        _follow(run.run_id, verbose, partitions, quiet=quiet, fmt=fmt)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="The run id `hygge enqueue` printed.")],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until every flow has ended.")
    ] = False,
    partitions: PartitionsOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Show each flow of an enqueued run: state, rows, rate, retries."""
    from worker import client
    from worker.display import status_table

    fmt = setup_logging(verbose, log_format=log_format)
    if watch:
        _follow(run_id, verbose, partitions, fmt=fmt)
        return
    with user_errors(verbose):
        current = client.status(run_id)
    console.print(status_table(current, partitions))
    if current.done and not current.ok:
        raise typer.Exit(1)


def _show_enqueued(run: Any) -> None:
    """The run id, each flow's task id, and where to watch (Flower only if one answers)."""
    from worker.watch import flower_answers

    console.print(f"run id: [bold]{run.run_id}[/]", highlight=False)
    for name, task_id in run.task_ids.items():
        note = "" if name in run.sent else "  (sent when its dependencies succeed)"
        console.print(f"  {name}: task {task_id}{note}", highlight=False)
    flower = f"Flower: {run.flower_url}   " if flower_answers(run.flower_url) else ""
    console.print(f"{flower}status: hygge status {run.run_id} --watch", highlight=False)


def _follow(
    run_id: str,
    verbose: bool,
    partitions: bool = False,
    quiet: bool = False,
    fmt: logs.LogFormat = "text",
) -> None:
    """Live progress of a run until it ends; exit 1 if any flow failed or was skipped, or the
    run was lost. A Redis restart meanwhile is one line on stderr, not the end; so is a run
    that no worker has taken after a while (with how to start one)."""
    from hygge.display import LiveProgress, print_summary
    from hygge.progress import FlowState
    from worker import client
    from worker.contract import Settings
    from worker.display import flow_lines, status_table
    from worker.runs import connect
    from worker.watch import IdleWatch

    def notice(message: str) -> None:
        if fmt == "json":
            entry = {"time": logs.now_iso(), "event": "notice", "message": message}
            print(json.dumps(entry), file=sys.stderr, flush=True)
        else:
            err_console.print(f"[yellow]note:[/] {escape(message)}", highlight=False)

    live: LiveProgress | logs.JsonProgress = (
        logs.JsonProgress() if fmt == "json" else LiveProgress(console, quiet=quiet)
    )
    with user_errors(verbose), live:
        idle = IdleWatch(connect(Settings.from_env().result_backend, "result backend"))

        def show(run: RunStatus) -> None:
            for flow in flow_lines(run, partitions):
                live(flow.as_report())
            if said := idle.check(run):
                notice(said)

        final = client.follow(run_id, show, on_notice=notice)
    _record_distributed(final)
    if isinstance(live, logs.JsonProgress):
        flows = [logs.report_fields(f.as_report()) for f in flow_lines(final, partitions)]
        live.write({"event": "run_finished", "run_id": run_id, "ok": final.ok, "flows": flows})
    elif not quiet:
        print_summary(console, status_table(final, partitions))
    for failed in (f for f in final.flows if f.state in (FlowState.FAILED, FlowState.SKIPPED)):
        _report_failure(failed.flow, failed.message)
    if not final.ok:
        raise typer.Exit(exit_codes.FAILED)


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def worker(ctx: typer.Context) -> None:
    """Start a worker (any `celery worker` option works, e.g. --concurrency 4 -n w1@%h)."""
    from worker import launch

    with user_errors(False):
        launch.run_worker(list(ctx.args))


@app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def flower(ctx: typer.Context) -> None:
    """Start Flower on hygge's workers, with auth (--basic-auth=user:password, or
    FLOWER_BASIC_AUTH); any `celery flower` option works, e.g. --port=5555. It listens on
    127.0.0.1 unless --address says otherwise; --unsafe-no-auth starts an open Flower there."""
    from worker import launch

    with user_errors(False):
        launch.run_flower(list(ctx.args))


@app.command()
def scheduler(
    flows_file: FlowsArg,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Schedulers of one name elect one active (default: the file's name).",
        ),
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Send each scheduled flow (`schedule:` cron, or `every:`) to the workers when it is due;
    run several for standby: one is active at a time. See docs/schedules.md."""
    import logging

    from worker.scheduler import run_scheduler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with user_errors(verbose):
        run_scheduler(str(flows_file), name=name)


@app.command()
def runs(
    run_id: Annotated[
        str | None, typer.Argument(help="One run: each flow's rows, time, retries, error.")
    ] = None,
    flow: FlowOpt = None,
    state: Annotated[
        str | None,
        typer.Option("--state", "-s", help="Only runs in this state (success, failed, ...)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")] = 20,
    local: Annotated[
        bool, typer.Option("--local", help="Only the local history (no Redis).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """The history of past runs, newest first: `hygge run` (local file, HYGGE_HISTORY) and
    distributed runs (Redis, when it answers)."""
    from hygge.history import query, view
    from hygge.history.records import RUN_STATES

    if state is not None and state not in RUN_STATES:
        fail(f"unknown state '{state}'; use one of: {', '.join(RUN_STATES)}")
    if run_id is not None:
        found = query.find_run(run_id, local_only=local)
    else:
        found = query.find_runs(flow, state, limit, local_only=local)
    for note in found.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if run_id is not None and not found.runs:
        fail(f"no run with id '{run_id}' in the history (see `hygge runs` for the recent ones)")
    if as_json:
        payload = [r.as_json(with_flows=run_id is not None) for r in found.runs]
        print(json.dumps(payload[0] if run_id is not None else payload, indent=2))
    elif run_id is not None:
        console.print(view.run_table(found.runs[0], flow))
    else:
        console.print(view.runs_table(found.runs))


def _record_history(coordinator: Coordinator, result: object) -> None:
    """Keep a `hygge run` in the local history (a failure to do so is a warning)."""
    from hygge.history import from_run, record_local

    run = from_run(
        coordinator.run_id,
        getattr(result, "results", {}).values(),
        getattr(result, "seconds", 0.0),
        file=str(coordinator.config.path),
    )
    warning = record_local(run)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _record_distributed(final: RunStatus) -> None:
    """A run followed to its end (`enqueue --wait`, `status --watch`) into the local history."""
    from hygge.history import record_local
    from worker import history

    warning = record_local(history.record(final))
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _destinations(coordinator: Coordinator) -> dict[str, str]:
    """Where each flow's data went: its store's secret-free description."""
    places = {}
    for name in coordinator.selected:
        try:
            places[name] = coordinator.config.flows[name].store.build().describe()
        except Exception:  # a summary line is no place to fail
            places[name] = ""
    return places


def _show_plan(coordinator: Coordinator) -> None:
    for number, wave in enumerate(coordinator.plan(), start=1):
        for name in wave:
            console.print(
                f"wave {number}: [bold]{name}[/]  {_what(coordinator, name)}",
                highlight=False,
                soft_wrap=True,
            )


def _what(coordinator: Coordinator, name: str) -> str:
    """What one flow moves, from where to where, and how."""
    from hygge.contract import IncrementalHome

    spec = coordinator.config.flows[name]
    home, store = spec.home.build(), spec.store.build()
    mode = spec.store.mode or ""
    how = [mode] if mode and not spec.options.incremental else []
    if spec.options.incremental:
        state = home.incremental_definition() if isinstance(home, IncrementalHome) else {}
        cursor = state.get("cursor")
        how.append("incremental" + (f" on {cursor}" if cursor else ""))
    options = spec.options
    if options.partitioned:
        parts = len(options.ranges) if options.ranges else options.partitions
        how.append(f"in {parts} partitions")
    return f"{home.describe()} -> {store.describe()}" + (f" ({', '.join(how)})" if how else "")


def _show_part_notes(coordinator: Coordinator) -> None:
    """How partitioned flows read, where it is less than one snapshot (e.g. MariaDB)."""
    for name in coordinator.selected:
        spec = coordinator.config.flows[name]
        if spec.options.partitioned:
            note = getattr(spec.home.build(), "parts_note", lambda: None)()
            if note:
                console.print(f"[yellow]note:[/] flow '{name}': {note}", highlight=False)


def _show_entities(coordinator: Coordinator, each: bool) -> None:
    """The entities each definition found (and, with `each`, what each one would do), then
    notes: names skipped, entities gone since the last run."""
    for entity_set in coordinator.entity_sets():
        console.print(
            f"[bold]{entity_set.definition}[/]: {entity_set.described} "
            f"(found in {entity_set.seconds:.2f} s)",
            highlight=False,
            soft_wrap=True,
        )
        for entity in entity_set.entities if each else []:
            note = f"  [yellow]{entity.note}[/]" if entity.note else ""
            console.print(
                f"  {entity.flow}  {entity.where}: {_what(coordinator, entity.flow)}{note}",
                highlight=False,
                soft_wrap=True,
            )
        if not each:
            notes = [f"{e.flow}: {e.note}" for e in entity_set.entities if e.note]
            for note in notes:
                console.print(f"  [yellow]{note}[/]", highlight=False, soft_wrap=True)
    for note in coordinator.entity_notes():
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)


def _check_or_fail(coordinator: Coordinator, verbose: bool) -> None:
    """Every selected flow's home and store checked; each problem led by the flow's line."""
    problems = asyncio.run(coordinator.check())
    if not problems:
        return
    where = outcome.flow_places(coordinator.config.path)
    for name, exc in problems.items():
        if verbose:
            _print_traceback(exc)
        at = f"{where.get(name)}: " if where.get(name) else ""
        err_console.print(
            f"[bold red]error:[/] {escape(at)}flow '{escape(name)}': {escape(mask_url(str(exc)))}",
            highlight=False,
        )
    raise typer.Exit(exit_codes.for_failures(problems.values()))


def _report_failure(flow: str, message: str | None, where: str | None = None) -> None:
    """A failed flow's message, led by where the flow is defined (flows.yml:LINE) when known,
    so a run-time error points at the line to look at, as config errors do. A password in a
    URL the message quotes is masked."""
    message = mask_url(message) if message else message
    if _json_errors:
        entry = {"time": logs.now_iso(), "event": "flow_error", "flow": flow, "message": message}
        if where:
            entry["defined_at"] = where
        print(json.dumps(entry), file=sys.stderr, flush=True)
        return
    at = f" ({where})" if where else ""
    err_console.print(
        f"[red]{escape(flow)}[/]{escape(at)}: {escape(message or '')}", highlight=False
    )


def _print_traceback(exc: BaseException) -> None:
    import traceback

    # a driver's exception down the chain may quote the URL it was given, password and all
    err_console.print(escape(mask_url("".join(traceback.format_exception(exc)))), highlight=False)


def main() -> None:
    app(prog_name="hygge")
