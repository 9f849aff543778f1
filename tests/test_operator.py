"""What an operator sees of `hygge run` off a terminal (CI, cron, containers): timestamped
progress lines, a summary that does not wrap, JSON logs, --quiet, Ctrl-C, and the exit codes.
Every run is the real CLI in a fresh process, its output read through a pipe."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.checks import count_and_sum
from tests.conftest import ROOT, run_cli
from tests.helpers import wait_for, write_flows

PLUGINS = {"HYGGE_PLUGINS": "tests.distributed_plugins", "HYGGE_PROGRESS_SECONDS": "0.5"}
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def slow(name: str, out: Path, rows: int, delay: float, extra: str = "") -> str:
    return (
        f"  {name}:\n"
        f"    home: {{type: slow, rows: {rows}, batch_size: 100, delay: {delay}}}\n"
        f"    store: {{type: parquet, path: {out / name}}}\n" + extra
    )


def hygge(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, env={**PLUGINS, **env}, timeout=300)


def test_piped_output_has_timestamped_progress_and_an_unwrapped_summary(tmp_path: Path) -> None:
    deep = tmp_path / ("a-rather-long-folder-name-" * 4).strip("-")
    body = "flows:\n" + slow("steady", deep, rows=3000, delay=0.1)
    done = hygge("run", str(write_flows(tmp_path, body)), cwd=tmp_path, COLUMNS="80")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    progress = [ln for ln in lines if re.match(rf"{STAMP} steady: running \d+% · ", ln)]
    assert len(progress) >= 2, done.stdout  # one every 0.5 s of a flow of 3 s or more
    assert all(re.search(r"of 3\.0k rows · \S+ rows/s", ln) for ln in progress), progress
    assert any(ln.endswith(" left") for ln in progress), progress
    assert re.search(rf"^{STAMP} steady: success: 3,000 rows", done.stdout, re.M), done.stdout
    # the summary: one line per flow however long its destination, a total with the run's time
    row = next(ln for ln in lines if ln.startswith("│ steady"))
    assert f"parquet:{deep / 'steady'}" in row, row
    assert len(row) > 80
    total = next(ln for ln in lines if ln.startswith("│ total"))
    seconds = float(total.split("│")[5])
    assert 2.0 < seconds < 120, total
    assert "data moved" in done.stdout and "not memory use" in done.stdout
    assert count_and_sum(deep / "steady") == (3000, 3000, sum(range(3000)))


def test_json_logs_one_object_per_event(tmp_path: Path) -> None:
    body = (
        "flows:\n" + slow("steady", tmp_path, rows=2000, delay=0.1) + "  flaky:\n"
        f"    home: {{type: flaky, rows: 50, fail_times: 1, counter: {tmp_path / 'reads'}}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'flaky'}}}\n"
        "    options: {retries: 2, retry_delay: 0.1}\n"
        "  broken:\n"
        "    home: {type: slow, fail_loudly: true, connection: 'postgresql://u:s3cret@db/x'}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'broken'}}}\n"
        "  after:\n"
        f"    home: {{type: slow, rows: 10}}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'after'}}}\n"
        "    options: {depends_on: broken}\n"
    )
    done = hygge("run", str(write_flows(tmp_path, body)), "--log-format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # every line is JSON
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z$", e["time"]) for e in events)
    kinds = [(e["event"], e.get("flow")) for e in events]
    for expected in (
        ("flow_started", "steady"),
        ("flow_progress", "steady"),
        ("flow_committed", "steady"),
        ("flow_retrying", "flaky"),
        ("flow_committed", "flaky"),
        ("flow_failed", "broken"),
        ("flow_skipped", "after"),
        ("run_finished", None),
    ):
        assert expected in kinds, kinds
    progress = next(e for e in events if e["event"] == "flow_progress")
    assert progress["total_rows"] == 2000 and 0 < progress["percent"] < 100
    assert progress["rows"] > 0 and progress["rows_per_second"] > 0 and "seconds_left" in progress
    retry = next(e for e in events if e["event"] == "flow_retrying")
    assert retry["retry"] == 1 and "retry 1/2" in retry["message"]
    assert "Connection reset by peer" in retry["message"]
    skipped = next(e for e in events if e["event"] == "flow_skipped")
    assert "broken" in skipped["message"]
    end = events[-1]
    assert end["event"] == "run_finished" and end["exit_code"] == 1 and not end["ok"]
    assert {f["flow"]: f["state"] for f in end["flows"]} == {
        "steady": "success",
        "flaky": "success",
        "broken": "failed",
        "after": "skipped",
    }
    assert end["rows"] == 2050
    # errors on stderr are JSON too, with where the flow is defined; no secret anywhere
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    broken = next(e for e in errors if e.get("flow") == "broken")
    assert broken["defined_at"].endswith("flows.yml:9"), broken
    assert "s3cret" not in done.stdout + done.stderr


def test_log_format_from_the_environment_and_a_wrong_one(tmp_path: Path) -> None:
    flows = write_flows(tmp_path, "flows:\n" + slow("one", tmp_path, rows=10, delay=0))
    done = hygge("run", str(flows), cwd=tmp_path, HYGGE_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["event"] == "run_finished"
    wrong = hygge("run", str(flows), "--log-format", "xml", cwd=tmp_path)
    assert wrong.returncode == 2 and "'xml' is not a log format" in wrong.stderr, wrong.stderr


def test_quiet_prints_only_errors(tmp_path: Path) -> None:
    good = write_flows(tmp_path, "flows:\n" + slow("one", tmp_path, rows=10, delay=0))
    done = hygge("run", str(good), "--quiet", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    bad = write_flows(
        tmp_path,
        "flows:\n  bad:\n    home: {type: slow, fail_loudly: true, connection: x}\n"
        f"    store: {{type: parquet, path: {tmp_path / 'bad'}}}\n",
        "bad.yml",
    )
    done = hygge("run", str(bad), "-q", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert "cannot connect to x" in done.stderr and "bad.yml:2" in done.stderr, done.stderr


def test_verbose_says_what_each_flow_does(tmp_path: Path) -> None:
    flows = write_flows(tmp_path, "flows:\n" + slow("one", tmp_path, rows=10, delay=0))
    done = hygge("run", str(flows), "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "DEBUG asyncio" not in done.stderr and "Using selector" not in done.stderr
    assert re.search(r"hygge\.\S+: flow 'one'", done.stderr), done.stderr


# What -v adds for the file connectors: (logger, what the line says), as regexes.
PARQUET_NARRATION = [
    r"hygge\.homes: home 'files' \(parquet\): the glob \S+/in/\*\.parquet matched 3 file\(s\)",
    r"hygge\.homes: home 'files': reading \S+/p0\.parquet through pyarrow\.parquet",
    r"hygge\.locks: flow 'files': run lock taken on \S+ \(an exclusive flock on ",
    r"hygge\.stores: store 'files' \(parquet\): staging in \S+\.hygge-staging-\w+ \(a local",
    r"hygge\.stores: store 'files': committing 1 staged file\(s\) into \S+ \(mode replace\)",
    r"hygge\.stores: replacing \S+/out/files with its staging folder in one rename",
    r"hygge\.run: flow 'files': attempt 1, about 30 rows to move",
    r"hygge\.run: flow 'files': 30 rows read in 3 batch\(es\), as many staged; committing",
    r"hygge\.run: flow 'split': planned 2 partition\(s\) \(asked: 2\)",
    r"hygge\.checks: flow split: no shaping; checks not_null\(id\) \(on failure: fail\)",
    r"hygge\.stores: store 'split': committing 2 part\(s\) \(2 file\(s\)\) into \S+ \(mode append",
    r"hygge\.stores: journal \S+/_hygge/journal/commit-\w+\.json written \(the commit point\): "
    r"2 file\(s\) to publish",
    r"hygge\.stores: journal \S+ applied: 2 file\(s\) published into \S+/out/split",
    r"hygge\.stores\.delta: store 'table' \(delta\): no table at \S+ yet",
    r"hygge\.stores\.delta: store 'table': writes data files in place under \S+/out/table",
    r"hygge\.stores\.delta: store 'table': committing to \S+ \(attempt 1: one log commit",
    r"hygge\.stores\.open_mirroring: store 'mirror' \(open_mirroring\): table folder "
    r"\S+/orders, staging in \S+",
    r"hygge\.stores\.open_mirroring: store 'mirror': journal written \(the commit point\): "
    r"1 data file\(s\)",
]


def test_verbose_narrates_file_homes_and_stores(tmp_path: Path) -> None:
    """-v says which files a home matched and how it reads them, where a store stages, the
    run lock, the commit's steps, partitions and checks; without -v none of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    for i in range(3):
        pq.write_table(
            pa.table({"id": list(range(i * 10, i * 10 + 10))}), tmp_path / f"in/p{i}.parquet"
        )
    body = (
        "flows:\n"
        "  files: {home: in/*.parquet, store: out/files}\n"
        "  split:\n    home: in\n    store: {path: out/split, mode: append}\n"
        "    options: {partitions: 2}\n    checks: [{not_null: id}]\n"
        "  table: {home: in/*.parquet, store: {type: delta, path: out/table}}\n"
        "  mirror:\n    home: in/*.parquet\n"
        "    store: {type: open_mirroring, path: LandingZone, table: orders, key: [id]}\n"
    )
    flows = write_flows(tmp_path, body)
    done = hygge("run", str(flows), "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in PARQUET_NARRATION:
        assert re.search(line, done.stderr), (line, done.stderr)
    assert count_and_sum(tmp_path / "out/files") == (30, 30, sum(range(30)))
    quiet = hygge("run", str(flows), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert not re.search(r"hygge\.(homes|stores|locks|run|checks)", quiet.stdout + quiet.stderr)


def test_verbose_narrates_a_csv_home_into_s3(tmp_path: Path, emulators: Any) -> None:
    """CSV -> S3 with -v: the file matched and its reader, staging on the object store, the
    run lock object, the journal written and applied; the secrets of the endpoint never."""
    emu = emulators["s3"]
    bucket = emu.new_bucket()
    (tmp_path / "users.csv").write_text("id,name\n" + "".join(f"{i},u{i}\n" for i in range(50)))
    body = f"flows:\n  users:\n    home: users.csv\n    store: {bucket}/lake/users\n"
    flows = write_flows(tmp_path, body)
    env = emu.env
    done = hygge("run", str(flows), "-v", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    err, url = done.stderr, re.escape(f"{bucket}/lake/users")
    for line in (
        r"home 'users' \(csv\): the file \S+/users\.csv matched 1 file\(s\)",
        r"reading \S+/users\.csv through pyarrow's streaming CSV reader on the file",
        rf"store 'users' \(parquet\): staging in {re.escape(bucket)}/lake/\.users\.hygge-staging-"
        r"\w+ \(an object-store prefix",
        rf"flow 'users': run lock taken on \S*{url} "
        r"\(a run lock held as an object beside the dataset: s3://",
        rf"journal {url}/_hygge/journal/commit-\w+\.json written \(the commit point\): 1 file",
        rf"journal {url}/_hygge/journal/commit-\w+\.json applied: 1 file\(s\) published",
    ):
        assert re.search(line, err), (line, err)
    assert "testing-secret" not in done.stdout + err
    quiet = hygge("run", str(flows), cwd=tmp_path, **env)
    assert quiet.returncode == 0, quiet.stderr
    assert "staging in" not in quiet.stderr and "journal" not in quiet.stderr


def test_ctrl_c_says_interrupted_with_a_summary_and_commits_nothing_unfinished(
    tmp_path: Path,
) -> None:
    body = "flows:\n" + slow("quick", tmp_path, rows=10, delay=0)
    body += slow("long", tmp_path, rows=100_000, delay=0.2)
    write_flows(tmp_path, body)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", "flows.yml"],
        cwd=tmp_path,
        env={**_env(), **PLUGINS},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []

    def moving() -> bool:
        seen.append(proc.stdout.readline())  # type: ignore[union-attr]
        return "long: running " in seen[-1] and "%" in seen[-1]

    try:
        wait_for(moving, 120, "the long flow to report progress", every=0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(seen) + out
    assert proc.returncode == 130, out + err
    assert "hygge run summary (interrupted)" in out, out
    assert re.search(r"│ long\s+│ interrupted", out) and re.search(r"│ quick\s+│ success", out)
    assert "interrupted (Ctrl-C)" in err and "committed before: quick" in err, err
    assert "Traceback" not in err
    assert count_and_sum(tmp_path / "quick") == (10, 10, 45)
    assert not (tmp_path / "long").exists() or not list((tmp_path / "long").rglob("*.parquet"))


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and re.fullmatch(r"hygge \d+\.\d+\S*\n", done.stdout), done.stdout


def test_the_exit_codes_are_documented_as_they_are() -> None:
    """README's table of exit codes is the one hygge/exit_codes.py returns, code for code."""
    from hygge import exit_codes

    section = (ROOT / "README.md").read_text().split("### Exit codes", 1)[1].split("\n#", 1)[0]
    documented = {int(code) for code in re.findall(r"^\|\s*(\d+)\s*\|", section, re.M)}
    names = ("OK", "FAILED", "USAGE", "LOCKED", "INTERRUPTED")
    assert documented == {getattr(exit_codes, n) for n in names} == {0, 1, 2, 3, 130}


def test_printed_paths_are_tidy(tmp_path: Path) -> None:
    """A flows.yml in a subfolder writing `../lake/x`: the summary says `lake/x`, never
    `sub/../lake/x`."""
    (tmp_path / "sub").mkdir()
    body = "flows:\n" + slow("one", Path(".."), rows=10, delay=0).replace(
        "path: ../one", "path: ../lake/one"
    )
    assert "../lake/one" in body
    done = hygge("run", str(write_flows(tmp_path / "sub", body)), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tmp_path}/lake/one" in done.stdout and "/../" not in done.stdout, done.stdout
    assert count_and_sum(tmp_path / "lake/one") == (10, 10, 45)


def test_the_schema_describes_options_and_the_readme_the_test_time() -> None:
    """`options` of a home or store says what it is (it read "Settings, again"); the README
    says how long the tests take."""
    schema = _schema()
    described = [
        d["properties"]["options"].get("description", "")
        for name, d in schema["$defs"].items()
        if name.endswith(("Home", "Store")) and "options" in d.get("properties", {})
    ]
    assert len(described) >= 4 and all("More settings of this" in d for d in described)
    assert "Settings, again" not in json.dumps(schema)
    assert re.search(r"about \d+ minutes on 2 cores", (ROOT / "README.md").read_text())


def test_exit_codes_usage_and_locked(tmp_path: Path) -> None:
    """2: the command line or flows.yml is wrong; 3: a destination locked by another run."""
    assert run_cli("run", "--no-such-option", "x.yml").returncode == 2
    wrong = write_flows(tmp_path, "flows:\n  x:\n    home: {type: nope}\n    store: out\n", "w.yml")
    done = run_cli("run", str(wrong), cwd=tmp_path)
    assert done.returncode == 2 and "w.yml:3" in done.stderr, done.stderr
    assert run_cli("validate", str(wrong), cwd=tmp_path).returncode == 2
    flows = write_flows(tmp_path, "flows:\n" + slow("held", tmp_path, rows=100_000, delay=0.2))
    first = subprocess.Popen(
        [sys.executable, "-m", "hygge", "run", str(flows)],
        cwd=tmp_path,
        env={**_env(), **PLUGINS},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first.stdout is not None
        wait_for(lambda: "held: running" in first.stdout.readline(), 120, "the first run")  # type: ignore[union-attr]
        second = hygge("run", str(flows), cwd=tmp_path)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert second.returncode == 3, second.stdout + second.stderr
    assert "flow 'held' is already running" in second.stderr


def _env() -> dict[str, Any]:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}


def _schema() -> dict[str, Any]:
    done = run_cli("schema")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def shipped_flows_files() -> list[Path]:
    found = [
        p
        for folder in ("samples", "docs", "deploy")
        for p in sorted((ROOT / folder).rglob("*.y*ml"))
        if re.search(r"^flows:", p.read_text(), re.M)
    ]
    assert len(found) >= 3, found
    return found


def test_every_shipped_flows_file_validates_against_hygge_schema() -> None:
    import jsonschema
    import yaml

    from hygge import config

    validator = jsonschema.Draft202012Validator(_schema())
    for path in shipped_flows_files():
        data = yaml.safe_load(path.read_text())
        problems = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(data)]
        assert not problems, f"{path}: {problems}"
        config.load(path, resolve=False)  # and hygge reads it (no database needed for that)


def test_the_schema_refuses_what_hygge_refuses(tmp_path: Path) -> None:
    import jsonschema
    import yaml

    from hygge import config
    from hygge.errors import ConfigError

    validator = jsonschema.Draft202012Validator(_schema())
    base = "flows:\n  f:\n    home: {type: parquet, path: in.parquet%s}\n    store: out\n%s"
    for home_extra, options in (
        (", colums: [a]", ""),  # a misspelt setting
        ("", "    options: {depends_on: 3}\n"),  # a number is no flow name
        ("", "    options: {retries: -1}\n"),
    ):
        text = base % (home_extra, options)
        assert list(validator.iter_errors(yaml.safe_load(text))), text
        path = write_flows(tmp_path, text)
        try:
            config.load(path, resolve=False)
        except ConfigError:
            continue
        raise AssertionError(f"hygge accepted what the schema refuses:\n{text}")
    one = base % ("", "    options: {depends_on: g}\n") + "  g: {home: in.parquet, store: o2}\n"
    assert not list(validator.iter_errors(yaml.safe_load(one)))


# -- errors: each one a message an operator can act on, with its exit code ----------------


def test_every_config_error_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    body = (
        "flows:\n"
        "  a:\n    home: {type: parquet, path: x.parquet, colums: [a]}\n    store: out/a\n"
        "  b:\n    home: {type: nope}\n    store: out/b\n"
        "  c:\n    home: x.parquet\n    store: out/c\n    options: {retries: -1}\n"
        "  d:\n    home: x.parquet\n    store: out/d\n"
    )
    flows = write_flows(tmp_path, body)
    for command in ("validate", "run"):
        done = run_cli(command, str(flows), cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        err = done.stderr
        assert f"3 problems in {flows}" in err, err
        assert "flows.yml:3: flow 'a'" in err and "did you mean 'columns'" in err, err
        assert "flows.yml:6: flow 'b'" in err and "unknown home type 'nope'" in err, err
        assert "flows.yml:11: flow 'c'" in err and "retries" in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_many_config_errors_are_bounded(tmp_path: Path) -> None:
    body = "flows:\n" + "".join(
        f"  f{i}:\n    home: {{type: nope}}\n    store: out/{i}\n" for i in range(30)
    )
    done = run_cli("validate", str(write_flows(tmp_path, body)), cwd=tmp_path)
    assert done.returncode == 2 and "30 problems in" in done.stderr
    assert done.stderr.count("unknown home type") == 20 and "and 10 more problem(s)" in done.stderr


def test_every_cross_flow_error_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    """The checks across flows (shared destinations, dependencies, cycles, schedules on
    dependent flows, a home reading another flow's output, entity names) report every problem
    with its flows.yml line, together with a flow's own problems; exit code 2, nothing run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1]}), tmp_path / "in.parquet")
    for folder, name in (("d1", "a.b"), ("d2", "b")):
        (tmp_path / folder).mkdir()
        pq.write_table(pa.table({"id": [1]}), tmp_path / folder / f"{name}.parquet")
    body = (
        "flows:\n"
        "  a:\n    home: in.parquet\n    store: out/shared\n"  # 2
        "  b:\n    home: in.parquet\n    store: out/shared\n"  # 5: same destination as a
        "  c:\n    home: in.parquet\n    store: out/c\n"
        "    options: {depends_on: nowhere}\n"  # 11: unknown flow
        "  d:\n    home: in.parquet\n    store: out/d\n    options: {depends_on: e}\n"  # 12
        "  e:\n    home: in.parquet\n    store: out/e\n    options: {depends_on: d}\n"
        "  f:\n    home: in.parquet\n    store: out/f\n"
        '    options: {depends_on: a, schedule: "0 * * * *"}\n'  # 23: schedule on a dependant
        "  g:\n    home: out/e\n    store: out/g\n"  # 24: reads e's output, no depends_on
        "  h:\n    home: {type: nope}\n    store: out/h\n"  # 28: a flow's own problem
        '  crm:\n    home: "d1/{entity}.parquet"\n    store: "lake/one/{entity}"\n'
        '  crm.a:\n    home: "d2/{entity}.parquet"\n    store: "lake/two/{entity}"\n'  # 33
        "  i:\n    home: in.parquet\n    store: out/i\n    options: {depends_on: h}\n"
    )
    flows = write_flows(tmp_path, body)
    for command in ("validate", "run"):
        done = run_cli(command, str(flows), cwd=tmp_path)
        assert done.returncode == 2, done.stdout + done.stderr
        err = done.stderr
        assert f"7 problems in {flows}" in err, err
        expected = [
            (5, "flows 'a' (line 2), 'b' (line 5) all write"),
            (11, "depends on unknown flow 'nowhere'"),
            (12, "depends_on forms a cycle: d -> e -> d"),
            (23, "a flow that depends on another (a) cannot have its own schedule"),
            (24, "the home reads what flow 'e' writes, but does not depend on it"),
            (28, "unknown home type 'nope'"),
            (33, "entity 'b' makes a flow named 'crm.a.b', and so does entity 'a.b'"),
        ]
        places = [int(m) for m in re.findall(rf"^{re.escape(str(flows))}:(\d+): ", err, re.M)]
        assert places == sorted(places), err  # in the file's order
        for line, message in expected:
            assert re.search(
                rf"^{re.escape(str(flows))}:{line}: .*{re.escape(message)}", err, re.M
            ), (
                line,
                message,
                err,
            )
        assert "unknown flow 'h'" not in err  # h did not parse: its own error is enough
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "lake").exists()


def test_cross_flow_errors_are_bounded_too(tmp_path: Path) -> None:
    body = "flows:\n" + "".join(
        f"  f{i}:\n    home: in.parquet\n    store: out/{i}\n"
        f"    options: {{depends_on: ghost{i}}}\n"
        for i in range(25)
    )
    done = run_cli("validate", str(write_flows(tmp_path, body)), cwd=tmp_path)
    assert done.returncode == 2 and "25 problems in" in done.stderr, done.stderr
    assert done.stderr.count("depends on unknown flow") == 20
    assert "and 5 more problem(s)" in done.stderr


def test_a_missing_input_is_printed_once_with_its_line(tmp_path: Path) -> None:
    flows = write_flows(tmp_path, "flows:\n  m:\n    home: nothing.parquet\n    store: out/m\n")
    done = run_cli("run", str(flows), cwd=tmp_path)
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert out.count("input not found") == 1, out
    assert f"m ({flows}:2): input not found: {tmp_path / 'nothing.parquet'}" in done.stderr


def test_a_wrong_csv_column_lists_the_available_ones(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    body = "flows:\n  c:\n    home: {type: csv, path: in.csv, columns: [a, c]}\n    store: out/c\n"
    flows = write_flows(tmp_path, body)
    for command in ("validate", "run"):
        done = run_cli(command, str(flows), cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "column(s) c not found" in done.stderr and "available columns: a, b" in done.stderr
        assert "valid, complete csv" not in done.stderr and "include_columns" not in done.stderr
    assert not (tmp_path / "out" / "c").exists()


def test_unsupported_database_urls_say_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    body = (
        "flows:\n"
        "  ms:\n    home: in.csv\n"
        "    store: {type: sql, connection: 'mssql://u:pw1@127.0.0.1:1/db', table: t}\n"
        "  snow:\n    home: in.csv\n"
        "    store: {type: sql, connection: 'snowflake://u:pw2@acct/db', table: t}\n"
    )
    done = run_cli("validate", str(write_flows(tmp_path, body)), cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    err = done.stderr
    assert "the driver for mssql is not installed (pyodbc)" in err, err
    assert "pip install pyodbc" in err and "ODBC Driver 18" in err
    assert "snowflake:// is not supported by hygge out of the box" in err
    assert "pip install snowflake-sqlalchemy" in err
    assert "server runs" not in err and "pip install 'hygge'" not in err
    assert "pw1" not in err and "pw2" not in err


def test_a_connection_error_says_connect_first_then_where(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")
    body = (
        "flows:\n  down:\n    home: in.csv\n"
        "    store: {type: sql, connection: 'postgresql://u:pw3@127.0.0.1:1/db', table: t}\n"
        "    options: {retries: 0}\n"
    )
    flows = write_flows(tmp_path, body)
    done = run_cli("run", str(flows), cwd=tmp_path)
    assert done.returncode == 1
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("down"))
    assert line.startswith(f"down ({flows}:2): cannot connect to postgresql at host 127.0.0.1")
    assert "for flow 'down' (to take its run lock)" in line and "pw3" not in done.stderr
    checked = run_cli("validate", str(flows), cwd=tmp_path)
    assert checked.returncode == 1
    assert f"{flows}:2: flow 'down': cannot connect to postgresql" in checked.stderr


def test_the_readme_python_snippet_defines_every_name_it_uses() -> None:
    import ast
    import builtins

    readme = (ROOT / "README.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", readme, re.S):
        tree = ast.parse(block)
        bound = set(dir(builtins))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, ast.arg | ast.FunctionDef | ast.ClassDef):
                bound.add(node.arg if isinstance(node, ast.arg) else node.name)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        assert used <= bound, f"README snippet uses undefined {used - bound}:\n{block}"


def test_the_live_table_shows_the_retry_count_and_reason(tmp_path: Path) -> None:
    """On a terminal: the retrying flow's line says which retry and why; no log line is
    printed over the table (it would leave copies of the table on screen)."""
    import io

    from rich.console import Console

    from hygge import Flow, ParquetStore
    from hygge.display import LiveProgress
    from tests.distributed_plugins import FlakyHome

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    home = FlakyHome("flaky", rows=10, fail_times=1, counter=str(tmp_path / "reads"))
    with LiveProgress(console) as live:
        store = ParquetStore("o", path=str(tmp_path / "o"))
        Flow(home, store, name="flaky", retries=3, retry_delay=0.5, on_progress=live).run()
    text = out.getvalue()
    assert re.search(r"flaky\s+retrying .*retry 1/3 in \d+s: .*Connection reset by peer", text)
    assert "transient failure" not in text and "WARNING" not in text
    assert count_and_sum(tmp_path / "o") == (10, 10, 45)
