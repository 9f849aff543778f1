"""The `hygge` command: thin wrappers that parse, call the library, and print.

The commands that start or talk to workers (`enqueue`, `status`, `worker`, `flower`) import the
distributed engine (`worker`, Celery, redis) when they are called, never before: `import hygge`
and `hygge run` stay light."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console

from hygge.errors import HyggeError

if TYPE_CHECKING:
    from hygge.coordinator import Coordinator

app = typer.Typer(
    help="hygge moves data from Homes (sources) to Stores (destinations), batch by batch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # messages stay greppable

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
    bool, typer.Option("--verbose", "-v", help="Log details and show tracebacks.")
]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Show a HyggeError as a clear message (a traceback only with --verbose)."""
    try:
        yield
    except HyggeError as exc:
        if verbose:
            err_console.print_exception()
        fail(str(exc))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
) -> None:
    """Move the data of flows.yml in-process (no server needed)."""
    from hygge.coordinator import Coordinator
    from hygge.display import LiveProgress, summary_table

    setup_logging(verbose)
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
            console.print("[green]dry run: everything checks out; nothing was moved.[/]")
            return
        with LiveProgress(console) as live:
            coordinator.on_progress = live
            result = coordinator.run()
    _record_history(coordinator, result)
    console.print(summary_table(result.results.values(), _destinations(coordinator)))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for report in result.results.values():
        if report.checks:  # what the flow's checks decided (hygge/gate.py)
            console.print(f"checks of {report.flow}: {report.checks}", highlight=False)
    for failed in result.failed:
        _report_failure(failed.flow, failed.error)
        if verbose and failed.exception is not None:
            _print_traceback(failed.exception)
    if not result.ok:
        raise typer.Exit(1)


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


@app.command()
def enqueue(
    flows_file: FlowsArg,
    flow: FlowOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the run live; exit 1 if a flow fails.")
    ] = False,
    full_refresh: FullRefreshOpt = False,
    partitions: PartitionsOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Send one task per flow to Celery workers through Redis (HYGGE_BROKER_URL)."""
    from worker import client

    setup_logging(verbose)
    with user_errors(verbose):
        run = client.enqueue(flows_file, flow, full_refresh=full_refresh)
    for note in run.notes:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)
    console.print(f"run id: [bold]{run.run_id}[/]", highlight=False)
    for name, task_id in run.task_ids.items():
        note = "" if name in run.sent else "  (sent when its dependencies succeed)"
        console.print(f"  {name}: task {task_id}{note}", highlight=False)
    console.print(
        f"Flower: {run.flower_url}   status: hygge status {run.run_id} --watch", highlight=False
    )
    if wait:
        _follow(run.run_id, verbose, partitions)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="The run id `hygge enqueue` printed.")],
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until every flow has ended.")
    ] = False,
    partitions: PartitionsOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show each flow of an enqueued run: state, rows, rate, retries."""
    from worker import client
    from worker.display import status_table

    setup_logging(verbose)
    if watch:
        _follow(run_id, verbose, partitions)
        return
    with user_errors(verbose):
        current = client.status(run_id)
    console.print(status_table(current, partitions))
    if current.done and not current.ok:
        raise typer.Exit(1)


def _follow(run_id: str, verbose: bool, partitions: bool = False) -> None:
    """Live progress of a run until it ends; exit 1 if any flow failed or was skipped, or the
    run was lost. A Redis restart meanwhile is one line on stderr, not the end."""
    from hygge.display import LiveProgress
    from hygge.progress import FlowState
    from worker import client
    from worker.display import flow_lines, status_table

    def notice(message: str) -> None:
        err_console.print(f"[yellow]note:[/] {message}", highlight=False)

    with user_errors(verbose), LiveProgress(console) as live:

        def show(run: client.RunStatus) -> None:
            for flow in flow_lines(run, partitions):
                live(flow.as_report())

        final = client.follow(run_id, show, on_notice=notice)
    _record_distributed(final)
    console.print(status_table(final, partitions))
    for failed in (f for f in final.flows if f.state in (FlowState.FAILED, FlowState.SKIPPED)):
        _report_failure(failed.flow, failed.message)
    if not final.ok:
        raise typer.Exit(1)


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


def _record_distributed(final: object) -> None:
    """A run followed to its end (`enqueue --wait`, `status --watch`) into the local history."""
    from hygge.history import record_local
    from worker import history

    warning = record_local(history.record(final))  # type: ignore[arg-type]
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
    spec = coordinator.config.flows[name]
    home, store = spec.home.build(), spec.store.build()
    mode = spec.store.mode or ""
    how = [mode] if mode and not spec.options.incremental else []
    if spec.options.incremental:
        cursor = getattr(home.settings, "cursor", None)
        how.append("incremental" + (f" on {cursor}" if cursor else ""))
    options = spec.options
    if options.partitioned:
        parts = len(options.ranges) if options.ranges else options.partitions
        how.append(f"in {parts} partitions")
    return f"{home.describe()} -> {store.describe()}" + (f" ({', '.join(how)})" if how else "")


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
    problems = asyncio.run(coordinator.check())
    if not problems:
        return
    for name, exc in problems.items():
        if verbose:
            _print_traceback(exc)
        err_console.print(f"[bold red]error:[/] flow '{name}': {exc}", highlight=False)
    raise typer.Exit(1)


def _report_failure(flow: str, message: str | None) -> None:
    err_console.print(f"[red]{flow}[/]: {message}", highlight=False)


def _print_traceback(exc: BaseException) -> None:
    import traceback

    err_console.print("".join(traceback.format_exception(exc)), highlight=False)


def main() -> None:
    app(prog_name="hygge")
