"""Seconds per pipeline stage, wall clock and CPU, for reports and asset metadata.

Both clocks, because the machines this runs on are often shared: wall time says how long a
user waits, CPU time (of the calling thread) what the stage itself costs.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Accumulates (wall, cpu) seconds per named stage; stages keep their first-seen order."""

    def __init__(self, stages: tuple[str, ...] = ()) -> None:
        self.wall: dict[str, float] = dict.fromkeys(stages, 0.0)
        self.cpu: dict[str, float] = dict.fromkeys(stages, 0.0)

    def add(self, stage: str, wall: float, cpu: float) -> None:
        self.wall[stage] = self.wall.get(stage, 0.0) + wall
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - w0, time.thread_time() - c0)

    def merge(self, other: "StageTimer") -> "StageTimer":
        for name in other.wall:
            self.add(name, other.wall[name], other.cpu[name])
        return self

    def to_dict(self, digits: int = 3) -> dict[str, dict[str, float]]:
        """{"wall": {stage: s}, "cpu": {stage: s}}"""
        return {"wall": {k: round(v, digits) for k, v in self.wall.items()},
                "cpu": {k: round(v, digits) for k, v in self.cpu.items()}}
