"""The run report of a snapshot build: every message, skip, gap and break, counted.

Accounting identity (checked in tests): every book message read is either applied, a Binance
REST snapshot (`resyncs`), or in exactly one skip counter (`duplicates`,
`deltas_before_snapshot`, `skipped_after_gap`, `stale_before_sync`). Lines that never became
a book message are `bad_lines`, `other_symbol`, `control_messages` or `non_book` lines.
"""

from dataclasses import dataclass, field


@dataclass
class SnapshotReport:
    files: list[dict] = field(default_factory=list)  # per file: path, format, lines, truncated
    exchange: str | None = None
    symbol: str | None = None
    cadence: str = "100ms"
    depth: int = 10
    messages: int = 0  # book messages parsed
    bad_lines: int = 0
    out_of_range_lines: int = 0  # bad lines with an implausible time or id (docs/DATA_FORMATS.md rule 8)
    bad_receive_times: int = 0  # implausible receive times dropped (the message kept)
    bad_line_examples: list[str] = field(default_factory=list)
    other_symbol: int = 0
    control_messages: int = 0
    non_book: dict[str, int] = field(default_factory=dict)
    truncated_files: list[dict] = field(default_factory=list)  # {path, reason, lines_kept}
    empty_files: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)  # from the sampler kernel

    def to_dict(self) -> dict:
        c = self.counters
        return {
            "messages": self.messages,
            "rows": c.get("rows", 0),
            "sessions": c.get("sessions", 0),
            "gaps": c.get("gaps", 0),
            "crossed_skipped": c.get("crossed_skipped", 0),
            "bad_lines": self.bad_lines,
            "out_of_range_lines": self.out_of_range_lines,
            "clock_faults": c.get("clock_faults", 0),
            "bad_receive_times": self.bad_receive_times,
            "truncated_files": len(self.truncated_files),
            "truncated": self.truncated_files,
            "empty_files": self.empty_files,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "cadence": self.cadence,
            "depth": self.depth,
            "applied": c.get("applied", 0),
            "snapshots": c.get("snapshots", 0),
            "resyncs": c.get("resyncs", 0),
            "duplicates": c.get("duplicates", 0),
            "deltas_before_snapshot": c.get("deltas_before_snapshot", 0),
            "skipped_after_gap": c.get("skipped_after_gap", 0),
            "stale_before_sync": c.get("stale_before_sync", 0),
            "replayed_after_rest": c.get("replayed", 0),
            "time_backwards": c.get("time_backwards", 0),
            "time_breaks": c.get("time_breaks", 0),
            "empty_side_skipped": c.get("empty_side_skipped", 0),
            "bad_levels": c.get("bad_levels", 0),
            "other_symbol": self.other_symbol,
            "control_messages": self.control_messages,
            "non_book": dict(self.non_book),
            "bad_line_examples": self.bad_line_examples,
            "files": self.files,
        }
