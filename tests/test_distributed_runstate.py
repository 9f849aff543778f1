"""The run records on real Redis, without workers: depends_on decisions, the sweeper's
catch-up, claims that hold under races, and the lease rules of `begin`/`end`/`reclaim`."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.distributed_support import claim_db, flush
from worker.contract import FlowJob, Keys
from worker.lease import Lease
from worker.runs import Runs


@pytest.fixture
def state(redis_url: str) -> Iterator[Runs]:
    url = claim_db(redis_url)
    yield Runs(redis.Redis.from_url(url))
    flush(url)


def plan(state: Runs, graph: dict[str, list[str]], run_id: str = "run1") -> list[str]:
    jobs = [
        FlowJob(
            run_id=run_id, flow=n, raw={"store": n}, base_dir="/", task_id=f"t-{n}", depends_on=d
        )
        for n, d in graph.items()
    ]
    roots = state.create(run_id, "flows.yml", jobs)
    for job in roots:  # as if `hygge enqueue` had sent them
        state.sent(job)
    state.sending(run_id, None)
    return [j.flow for j in roots]


def lease(state: Runs, job: FlowJob) -> Lease:
    return Lease(state.r, job, 10)


def run_attempt(state: Runs, flow: str, outcome: str, run_id: str = "run1") -> list[str]:
    job = state.job(run_id, flow)
    held = lease(state, job)
    assert state.begin(job, held, "w1@test", job.task_id).verdict == "ok"
    return [j.flow for j in state.end(job, held, outcome)]


def states(state: Runs, run_id: str = "run1") -> dict[str, str]:
    return {f.flow: f.state for f in state.status(run_id).flows}


def test_a_flow_is_sent_when_all_its_dependencies_succeeded(state: Runs) -> None:
    assert plan(state, {"a": [], "b": [], "c": ["a", "b"], "d": ["c"]}) == ["a", "b"]
    assert run_attempt(state, "a", "success") == []  # c still waits for b
    assert run_attempt(state, "b", "success") == ["c"]
    assert run_attempt(state, "c", "success") == ["d"]
    assert run_attempt(state, "d", "success") == []
    assert state.status("run1").ok and state.active_runs() == []
    assert state.r.ttl(Keys("run1").run) > 0  # kept a while for `hygge status`


def test_a_failure_skips_everything_behind_it_and_says_why(state: Runs) -> None:
    plan(state, {"a": [], "b": ["a"], "c": ["b"], "other": []})
    assert run_attempt(state, "a", "failed") == []
    assert states(state) == {"a": "failed", "b": "skipped", "c": "skipped", "other": "queued"}
    assert "depends on a" in state.flow_status("run1", "b").message
    assert "depends on b" in state.flow_status("run1", "c").message
    assert state.active_runs() == ["run1"]  # `other` has not ended
    run_attempt(state, "other", "success")
    assert state.active_runs() == []


def test_the_sweeper_catches_up_when_a_worker_died_before_sending(state: Runs) -> None:
    plan(state, {"a": [], "b": ["a"], "c": ["a"]})
    state.update("run1", "a", state="success")  # ended, but its dependants were never sent
    assert sorted(j.flow for j in state.advance("run1")) == ["b", "c"]
    assert state.advance("run1") == []  # claimed once


def test_racing_workers_send_a_flow_once(state: Runs) -> None:
    plan(state, {"a": [], "b": [], "c": ["a", "b"]})
    for flow in ("a", "b"):
        state.update("run1", flow, state="success")
    with ThreadPoolExecutor(8) as pool:
        sent = [
            j.flow for jobs in pool.map(lambda _: state.advance("run1"), range(16)) for j in jobs
        ]
    assert sent == ["c"]


def test_begin_refuses_old_copies_finished_flows_and_a_held_lease(state: Runs) -> None:
    plan(state, {"a": []})
    job = state.job("run1", "a")
    lock = Keys.lock(job.lease_key)

    def begin(j: FlowJob, held: Lease) -> str:
        return state.begin(j, held, "w@test", "x").verdict

    t1, t2 = lease(state, job), lease(state, job)
    assert begin(job, t1) == "ok"
    assert begin(job, t2) == "busy"
    state.r.delete(lock)  # the lease expired: its worker is presumed dead
    [again] = state.reclaim("run1")
    assert again.generation == 2
    assert begin(job, lease(state, job)) == "stale"  # generation 1
    assert not state.r.exists(lock)  # an old copy never keeps the lease
    t4 = lease(state, again)
    assert begin(again, t4) == "ok"
    assert begin(job, lease(state, job)) == "stale"  # an old copy while the new one runs
    assert state.end(job, t1, "failed") is None  # the first worker's late end: refused
    assert state.r.get(lock) == t4.token.encode()
    assert state.flow_status("run1", "a").state == "running"
    assert state.end(again, t4, "success") == []
    assert not state.r.exists(lock)  # given back
    assert begin(again, lease(state, again)) == "stale"


def test_a_newer_copy_waits_while_an_older_one_lets_go(state: Runs) -> None:
    plan(state, {"a": []})
    job = state.job("run1", "a")
    old = lease(state, job)
    assert old.take()  # an old copy holds the lease for a moment
    newer = job.model_copy(update={"generation": 2})
    assert state.begin(newer, lease(state, newer), "w@test", "x").verdict == "waiting"


def test_a_flow_claimed_but_never_sent_is_sent_again(state: Runs) -> None:
    jobs = [
        FlowJob(run_id="run1", flow=n, raw={"store": n}, base_dir="/", task_id=n)
        for n in ("sent", "lost")
    ]
    state.create("run1", "flows.yml", jobs, sending_seconds=30)
    state.sent(jobs[0])  # the enqueuer was killed before sending `lost`
    assert state.unsent("run1", 0) == []  # its enqueuer may still be sending
    state.sending("run1", None)  # ... and now it is gone
    assert [j.flow for j in state.unsent("run1", 0)] == ["lost"]
    assert state.unsent("run1", 60) == []  # re-claimed just now: not again before the grace
    assert states(state) == {"sent": "queued", "lost": "pending"}


def test_another_run_writing_the_same_destination_makes_a_flow_wait(state: Runs) -> None:
    plan(state, {"a": []}, run_id="first")
    plan(state, {"a": []}, run_id="second")
    first, second = state.job("first", "a"), state.job("second", "a")
    assert first.lease_key == second.lease_key
    x, y = lease(state, first), lease(state, second)
    assert state.begin(first, x, "w1@test", "t").verdict == "ok"
    begun = state.begin(second, y, "w2@test", "t")
    assert (begun.verdict, begun.holder) == ("waiting", x.token)
    assert begun.holder.startswith("first:")
    assert state.reclaim("second") == []  # not lost: waiting
    state.end(first, x, "success")
    assert state.begin(second, y, "w2@test", "t").verdict == "ok"


def test_reclaim_leaves_live_workers_alone(state: Runs) -> None:
    plan(state, {"a": [], "b": []})
    state.beat("alive@test", 30)
    state.update("run1", "a", state="retrying", worker="alive@test")
    state.update("run1", "b", state="retrying", worker="dead@test")
    assert [j.flow for j in state.reclaim("run1")] == ["b"]


def test_different_flows_with_the_same_store_config_run_side_by_side(state: Runs) -> None:
    jobs = [
        FlowJob(run_id="run1", flow=n, raw={"store": {"type": "discard"}}, base_dir="/", task_id=n)
        for n in ("a", "b")
    ]
    state.create("run1", "flows.yml", jobs)
    a, b = (state.job("run1", n) for n in ("a", "b"))
    assert state.begin(a, lease(state, a), "w1@test", "a").verdict == "ok"
    assert state.begin(b, lease(state, b), "w2@test", "b").verdict == "ok"


def test_a_message_of_a_run_redis_lost_never_starts(state: Runs) -> None:
    plan(state, {"a": []})
    job = state.job("run1", "a")
    # A restart of a Redis that keeps nothing (this DB stays claimed: only hygge's keys go).
    state.r.delete(*state.r.scan_iter("hygge:*"))
    held = lease(state, job)
    assert state.begin(job, held, "w@test", "x").verdict == "stale"
    assert not state.r.exists(Keys("run1").flow("a"))  # no half run written back
    assert not state.r.exists(held.key)


def test_a_discover_step_extends_its_run_once_and_the_run_ends_with_every_flow(
    state: Runs,
) -> None:
    assert plan(state, {"discover:entities": []}) == ["discover:entities"]
    found = [
        FlowJob(
            run_id="run1", flow=n, raw={"store": n}, base_dir="/", task_id=f"t-{n}", depends_on=d
        )
        for n, d in {"crm.a": [], "crm.b": [], "report": ["crm.a", "crm.b"]}.items()
    ]
    added = state.extend("run1", found)
    assert added is not None and [j.flow for j in added] == ["crm.a", "crm.b"]
    assert state.extend("run1", found) is None  # run again after its worker died: no twin
    assert state.flow_names("run1") == ["discover:entities", "crm.a", "crm.b", "report"]
    for job in added:
        state.sent(job)
    assert run_attempt(state, "discover:entities", "success") == []
    assert state.active_runs() == ["run1"]  # the flows it added still run
    assert run_attempt(state, "crm.a", "success") == []
    assert run_attempt(state, "crm.b", "failed") == []
    assert states(state)["report"] == "skipped"  # the one skip rule, in added flows too
    assert state.status("run1").done and state.active_runs() == []
