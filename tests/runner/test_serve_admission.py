"""serve's admission on its own, with its clock stepped: the dedup window, the bounds on runs, the queue's order,
and what a resolve, a failed start and a drain free. (test_serve.py drives the same through a real serve.)"""

from __future__ import annotations

from aias_runbooks.serve.admission import DUPLICATE, QUEUED, REFUSED, STARTED, Admission


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_group_is_one_run_within_its_window_and_while_its_run_lasts():
    clock = Clock()
    admission = Admission(max_running=2, max_queued=2, clock=clock)
    assert admission.admit("route/g1", 60, "r1").decision == STARTED
    clock.now += 59
    again = admission.admit("route/g1", 60, "r2")
    assert (again.decision, again.run_id) == (DUPLICATE, "r1")
    clock.now += 120
    assert admission.admit("route/g1", 60, "r3").run_id == "r1", "still running: a duplicate past the window"
    assert admission.finished("r1") is None
    assert admission.admit("route/g1", 60, "r4").decision == STARTED, "ended and past its window: a new run"


def test_runs_beyond_max_running_queue_in_order_then_are_refused():
    admission = Admission(max_running=1, max_queued=2, clock=Clock())
    decisions = [admission.admit(f"g{n}", 60, f"r{n}") for n in range(4)]
    assert [d.decision for d in decisions] == [STARTED, QUEUED, QUEUED, REFUSED]
    assert decisions[3].run_id is None and "max_running 1, max_queued 2" in decisions[3].reason
    assert admission.finished("r0") == "r1" and admission.finished("r1") == "r2"
    assert admission.finished("r2") is None and not admission.running


def test_a_resolve_ends_the_window_and_marks_a_live_run():
    clock = Clock()
    admission = Admission(max_running=1, max_queued=0, clock=clock)
    admission.admit("g", 600, "r1")
    admission.resolve("g")
    assert admission.resolved_meanwhile("r1")
    assert admission.admit("g", 600, "r2").decision == DUPLICATE, "its run still goes"
    admission.finished("r1")
    assert admission.admit("g", 600, "r3").decision == STARTED, "the next firing is a new run"
    admission.finished("r3")
    admission.resolve("g")
    assert admission.seen("g") is None


def test_a_failed_start_frees_its_place_and_window_and_a_drain_empties_the_queue():
    admission = Admission(max_running=1, max_queued=3, clock=Clock())
    admission.admit("a", 60, "r1")
    admission.admit("b", 60, "r2")
    admission.admit("c", 60, "r3")
    assert admission.forget("r1") == "r2" and admission.seen("a") is None
    assert admission.drain() == ["r3"] and admission.seen("c") is None
    assert admission.seen("b") == "r2"
