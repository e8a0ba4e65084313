"""Out-of-sample only: backtests and paper runs refuse rows their model was trained on.

A model version records its data range (`data_start`, `data_end`: every row its training
run read, the held-out tail included, since the tail selected it). A row at time t is
in-sample when `data_start <= t <= data_end + horizon` (the last training labels reach one
horizon past `data_end`). By default such rows are refused with a one-line error;
`allow_in_sample` runs anyway, and the result says `in_sample: true` (metadata, MLflow,
warehouse). A model that records no range cannot be shown to be out of sample: refused
unless allowed the same way.
"""

import datetime as dt
from dataclasses import asdict, dataclass

import numpy as np

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.models.labels import parse_horizon

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FLAG = "--allow-in-sample"


class InSampleError(TradePipelineError, ValueError):
    """The run would trade rows its model was trained on."""


def _us(text: str) -> int:
    value = dt.datetime.fromisoformat(text)
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class SampleCheck:
    in_sample: bool  # the run includes rows of the model's training range
    in_sample_rows: int
    rows: int
    training_range: list[str] | None  # [data_start, data_end]; None: unknown
    allowed: bool

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class OutOfSampleGuard:
    label: str
    start_us: int | None
    end_us: int | None  # data_end + horizon
    training_range: tuple[str, str] | None
    allow: bool = False

    @classmethod
    def for_model(cls, label: str, metadata: dict, allow: bool = False) -> "OutOfSampleGuard":
        start, end, horizon = (metadata.get(k) for k in ("data_start", "data_end", "horizon"))
        if not (start and end and horizon):
            return cls(label, None, None, None, allow)
        h_us = parse_horizon(horizon) // dt.timedelta(microseconds=1)
        return cls(label, _us(start), _us(end) + h_us, (start, end), allow)

    def _refuse(self, what: str) -> None:
        raise InSampleError(
            f"{what}: backtests and paper runs are out of sample by default; use later data, "
            f"or pass {FLAG} to run anyway (the result is labelled in-sample)")

    def check(self, ts_us: np.ndarray) -> SampleCheck:
        """Check the rows about to be traded (epoch µs); raise InSampleError unless allowed."""
        ts = np.asarray(ts_us, dtype=np.int64)
        if self.start_us is None:
            if not self.allow:
                self._refuse(f"model {self.label} records no training range, so its rows "
                             "cannot be shown to be out of sample")
            return SampleCheck(True, int(ts.size), int(ts.size), None, True)
        inside = int(np.count_nonzero((ts >= self.start_us) & (ts <= self.end_us)))
        if inside and not self.allow:
            s, e = self.training_range
            self._refuse(f"{inside:,} of the {ts.size:,} rows lie inside the training range of "
                         f"model {self.label} ({s} .. {e}, plus its label horizon)")
        return SampleCheck(inside > 0, inside, int(ts.size), list(self.training_range),
                           self.allow)

    def check_span(self, first_us: int, last_us: int) -> bool:
        """Live use, once per block of rows: True when [first, last] touches the range
        (raises unless allowed)."""
        if self.start_us is None:
            if not self.allow:
                self._refuse(f"model {self.label} records no training range")
            return True
        touches = first_us <= self.end_us and last_us >= self.start_us
        if touches and not self.allow:
            s, e = self.training_range
            self._refuse(f"live rows at {first_us} µs lie inside the training range of model "
                         f"{self.label} ({s} .. {e}, plus its label horizon)")
        return touches
