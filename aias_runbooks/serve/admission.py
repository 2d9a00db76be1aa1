"""Which alerts start a run: one run per group key within its dedup window (a storm of 500 alerts for one group is
one run), at most `max_running` runs at once and `max_queued` waiting, anything more refused (HTTP 429).

In memory, for one serve process on one event loop: nothing here blocks or touches the disk. A key whose run is
still running or queued is a duplicate whatever its window says, so one group never has two runs at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

STARTED, QUEUED, DUPLICATE, REFUSED = "started", "queued", "duplicate", "refused"
PRUNE_AT = 4096   # window entries kept before the expired ones are swept


@dataclass(frozen=True)
class Decision:
    decision: str            # started, queued, duplicate or refused
    run_id: str | None       # the run started or queued, or the earlier run a duplicate belongs to
    reason: str | None = None


@dataclass
class _Slot:
    run_id: str
    expires: float
    live: bool = True            # running or queued
    resolved: bool = False       # the alert resolved while its run was live


class Admission:
    """The dedup window and the bounds. admit() decides; finished() frees a run's place and names the next queued
    run to start; resolve() ends a key's window; drain() empties the queue."""

    def __init__(self, max_running: int, max_queued: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_running, self.max_queued, self.clock = max_running, max_queued, clock
        self.running: set[str] = set()
        self.queue: deque[str] = deque()
        self.keys: dict[str, _Slot] = {}
        self.key_of: dict[str, str] = {}

    def seen(self, key: str) -> str | None:
        """The run id of the key's live run or of its run within the window, if any (the alert is a duplicate)."""
        slot = self.keys.get(key)
        if slot is None or not (slot.live or slot.expires > self.clock()):
            return None
        return slot.run_id

    def admit(self, key: str, window_s: float, run_id: str) -> Decision:
        """Start `run_id` for `key` now, queue it, call it a duplicate of the key's earlier run, or refuse it."""
        if earlier := self.seen(key):
            return Decision(DUPLICATE, earlier, "the group's run within the dedup window")
        if len(self.running) < self.max_running:
            self.running.add(run_id)
            decision = Decision(STARTED, run_id)
        elif len(self.queue) < self.max_queued:
            self.queue.append(run_id)
            decision = Decision(QUEUED, run_id, f"{len(self.running)} run(s) running; number {len(self.queue)} "
                                "in the queue")
        else:
            return Decision(REFUSED, None, f"at capacity: {len(self.running)} run(s) running and "
                            f"{len(self.queue)} queued (max_running {self.max_running}, max_queued "
                            f"{self.max_queued}); try again later")
        self._prune()
        self.keys[key] = _Slot(run_id, self.clock() + window_s)
        self.key_of[run_id] = key
        return decision

    def finished(self, run_id: str) -> str | None:
        """The run ended: its place is free; the next queued run id, now counted as running, or None."""
        self.running.discard(run_id)
        self._ended(run_id)
        return self._promote()

    def _promote(self) -> str | None:
        if self.queue and len(self.running) < self.max_running:
            following = self.queue.popleft()
            self.running.add(following)
            return following
        return None

    def resolved_meanwhile(self, run_id: str) -> bool:
        """Whether the run's alert resolved while it was live (its status is then not paged)."""
        slot = self.keys.get(self.key_of.get(run_id, ""))
        return bool(slot and slot.run_id == run_id and slot.resolved)

    def resolve(self, key: str) -> None:
        """The key's alert resolved: its window ends (the next firing is a new run); a live run is marked."""
        slot = self.keys.get(key)
        if slot is None:
            return
        if slot.live:
            slot.resolved, slot.expires = True, 0.0
        else:
            del self.keys[key]

    def drain(self) -> list[str]:
        """Empty the queue (serve is stopping): the run ids that will not run (their windows end with them)."""
        dropped = list(self.queue)
        self.queue.clear()
        for run_id in dropped:
            self._unwindow(run_id)
        return dropped

    def forget(self, run_id: str) -> str | None:
        """A run that could not be started at all: its place and window are freed, as if never admitted; the
        next queued run id, now counted as running, or None."""
        self.running.discard(run_id)
        self._unwindow(run_id)
        return self._promote()

    def _unwindow(self, run_id: str) -> None:
        """A run that never ran: its key's window goes with it."""
        key = self.key_of.pop(run_id, None)
        if key is not None and (slot := self.keys.get(key)) and slot.run_id == run_id:
            del self.keys[key]

    def _ended(self, run_id: str) -> None:
        key = self.key_of.pop(run_id, None)
        slot = self.keys.get(key) if key is not None else None
        if slot is not None and slot.run_id == run_id:
            slot.live = False
            if slot.resolved:
                del self.keys[key]

    def _prune(self) -> None:
        if len(self.keys) < PRUNE_AT:
            return
        now = self.clock()
        for key in [k for k, s in self.keys.items() if not s.live and s.expires <= now]:
            del self.keys[key]
