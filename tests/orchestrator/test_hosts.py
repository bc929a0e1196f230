"""Which AgentHost a step runs on: a run keeps its host, new runs spread out, a lost host's runs
move. The pool's routing is tested with stand-in hosts (no Ray): `_run_on` is the only seam that
talks to an actor."""

from __future__ import annotations

import threading

import pytest
from ray.exceptions import RayActorError

from branchpoint.errors import HostLostError
from branchpoint.model import StepRequest, StepResult, Task
from branchpoint.orchestrator.hosts import HostPool


class StandInPool(HostPool):
    """A pool whose hosts are names; a host in `dead` dies on every turn; `hold` keeps a turn
    of the run named in it in flight until released."""

    def __init__(self, n: int) -> None:
        super().__init__([f"host-{i}" for i in range(n)], cooldown_s=60.0)
        self.ran: list[tuple[str, int]] = []
        self.dead: set[int] = set()
        self.hold: dict[str, threading.Event] = {}
        self.started = threading.Event()

    def _run_on(self, index: int, request: StepRequest) -> StepResult:
        if index in self.dead:
            raise RayActorError()
        self.ran.append((request.run_id, index))
        if request.run_id in self.hold:
            self.started.set()
            self.hold[request.run_id].wait(10)
        return StepResult(content="ok")


def request(run_id: str, step: int = 0) -> StepRequest:
    return StepRequest(
        run_id=run_id,
        team="math",
        step=step,
        agent="Solver",
        system_prompt="",
        task=Task(task_id="t", question="1+1?"),
        transcript=(),
        model="sim",
    )


def hosts_of(pool: StandInPool, run_id: str) -> list[int]:
    return [index for rid, index in pool.ran if rid == run_id]


def test_every_step_of_a_run_goes_to_the_same_host() -> None:
    pool = StandInPool(2)
    for step in range(6):
        for run_id in ("a", "b", "c"):  # three runs taking turns on two hosts
            pool.call(request(run_id, step))
    assert {run_id: set(hosts_of(pool, run_id)) for run_id in "abc"} == {
        "a": {0},
        "b": {1},
        "c": {0},
    }


def test_a_new_run_goes_to_a_host_with_no_turn_in_flight() -> None:
    pool = StandInPool(2)
    pool.call(request("first"))  # host 0
    pool.call(request("second"))  # host 1; the rotation now points at host 0 again
    release = pool.hold["first"] = threading.Event()
    busy = threading.Thread(target=pool.call, args=(request("first", 1),))
    busy.start()
    assert pool.started.wait(10)  # a turn of "first" is in flight on host 0
    pool.call(request("third"))
    release.set()
    busy.join(10)
    assert hosts_of(pool, "third") == [1]
    assert pool._in_flight == [0, 0]


def test_a_run_whose_host_died_moves_to_another_and_stays_there() -> None:
    pool = StandInPool(2)
    pool.call(request("a", 0))
    pool.dead.add(0)
    pool.call(request("a", 1))
    pool.dead.clear()  # restarted, but the run has a new home now
    pool.call(request("a", 2))
    assert hosts_of(pool, "a") == [0, 1, 1]
    assert pool.failovers == 1


def test_a_step_that_loses_every_host_fails_with_what_to_do() -> None:
    pool = StandInPool(2)
    pool.dead.update({0, 1})
    with pytest.raises(HostLostError, match="run --resume"):
        pool.call(request("a"))
    assert pool._in_flight == [0, 0]
