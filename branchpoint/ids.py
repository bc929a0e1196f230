"""Where new ids and timestamps come from: random and wall-clock by default, seeded in tests.

A session holds one `IdSource` and one `Clock`; run, fork, sweep, span and trace ids and the
durations recorded on runs are drawn from them, so a test that injects `SeededIds` and
`TickClock` gets the same ids and figures on every run and can compare what was persisted
exactly (the way Logfire's tests inject a seeded id generator and a fake time source).
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry.sdk.trace.id_generator import IdGenerator


class IdSource(Protocol):
    """Makes new ids: `prefix-` followed by `length` hex digits (no prefix: hex only)."""

    def new_id(self, prefix: str, length: int = 12) -> str:
        """A fresh id."""
        ...

    def bits(self, n: int) -> int:
        """A fresh non-zero integer of `n` random bits (span and trace ids)."""
        ...


class Clock(Protocol):
    """The time a session records: wall-clock timestamps and durations."""

    def now(self) -> datetime:
        """The current UTC time, without tzinfo (how the trace tables store it)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations)."""
        ...


def _join(prefix: str, digits: str) -> str:
    return f"{prefix}-{digits}" if prefix else digits


class RandomIds:
    """Ids from `uuid4` and the OS's randomness: the default."""

    def new_id(self, prefix: str, length: int = 12) -> str:
        """A fresh random id."""
        return _join(prefix, uuid.uuid4().hex[:length])

    def bits(self, n: int) -> int:
        """A fresh random non-zero integer of `n` bits."""
        return random.SystemRandom().getrandbits(n) or 1


class SeededIds:
    """The same sequence of ids for the same seed (thread-safe; order follows the calls)."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def new_id(self, prefix: str, length: int = 12) -> str:
        """The next id of the sequence."""
        with self._lock:
            digits = f"{self._rng.getrandbits(4 * length):0{length}x}"
        return _join(prefix, digits)

    def bits(self, n: int) -> int:
        """The next non-zero integer of the sequence."""
        with self._lock:
            return self._rng.getrandbits(n) or 1


class SystemClock:
    """The machine's clocks: the default."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC).replace(tzinfo=None)

    def monotonic(self) -> float:
        """`time.perf_counter()`."""
        return time.perf_counter()


class TickClock:
    """A clock that moves `tick` seconds each time it is read: durations and timestamps are
    fixed by the order of reads, not by how fast the machine is."""

    def __init__(self, start: datetime | None = None, tick: float = 1.0) -> None:
        self._start = start or datetime(2026, 1, 1)
        self._tick = tick
        self._reads = 0
        self._lock = threading.Lock()

    def _advance(self) -> float:
        with self._lock:
            self._reads += 1
            return self._reads * self._tick

    def now(self) -> datetime:
        """The start time plus one tick per read so far."""
        return self._start + timedelta(seconds=self._advance())

    def monotonic(self) -> float:
        """One tick more than the last read."""
        return self._advance()


class OtelIds(IdGenerator):
    """OpenTelemetry's span and trace ids drawn from an `IdSource`."""

    def __init__(self, ids: IdSource) -> None:
        self.ids = ids

    def generate_span_id(self) -> int:
        """A 64-bit span id."""
        return self.ids.bits(64)

    def generate_trace_id(self) -> int:
        """A 128-bit trace id."""
        return self.ids.bits(128)
