"""Seconds per pipeline stage, wall clock and CPU, for reports and asset metadata.

Both clocks, because the machines this runs on are often shared: wall time says how long a
user waits, CPU time what the stage itself costs. A stage's CPU time is the process's
(libraries such as polars and pyarrow work in threads of their own), or only the calling
thread's where a thread of ours runs beside it (`stage(name, thread=True)`).
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Accumulates (wall, cpu) seconds per named stage; stages keep their first-seen order."""

    def __init__(self, stages: tuple[str, ...] = ()) -> None:
        self.wall: dict[str, float] = dict.fromkeys(stages, 0.0)
        self.cpu: dict[str, float] = dict.fromkeys(stages, 0.0)
        self._open: list[list[float]] = []  # per open stage: time spent in stages inside it

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall[stage] = self.wall.get(stage, 0.0) + wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu

    @contextmanager
    def stage(self, name: str, thread: bool = False) -> Iterator[None]:
        """Time a block as `name`; a stage opened inside it counts only as itself (the
        outer stage gets its own time without the inner one's)."""
        inner = [0.0, 0.0]
        self._open.append(inner)
        cpu_clock = time.thread_time if thread else time.process_time
        w0, c0 = time.perf_counter(), cpu_clock()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - w0, cpu_clock() - c0
            self._open.pop()
            self.add(name, wall - inner[0], cpu - inner[1])
            if self._open:
                self._open[-1][0] += wall
                self._open[-1][1] += cpu

    def merge(self, other: "StageTimer") -> "StageTimer":
        for name in other.wall:
            self.add(name, other.wall[name], other.cpu[name])
        return self

    def to_dict(self, digits: int = 3) -> dict[str, dict[str, float]]:
        """{"wall": {stage: s}, "cpu": {stage: s}}"""
        return {"wall": {k: round(v, digits) for k, v in self.wall.items()},
                "cpu": {k: round(v, digits) for k, v in self.cpu.items()}}
