"""Exact warm-up of one partition from the rows before it (a day computed alone equals the
same day computed inside a longer range).

Every feature of a row depends only on rows of its own session: the rows in its windows
(at most the longest window, 5 min, back), the previous row, and for the quote lifetimes the
time of the last change of bp_1 / ap_1, which can lie any distance back. So the warm-up of a
partition whose first session began earlier is a small exact subset of that session's
earlier rows, in time order:

- the rows of the last 5 min before the partition, plus the row before them (their
  consecutive-row e_n and returns need it);
- for each of bp_1 and ap_1, the latest row where it changed and the row before that (so the
  kernel sees the change itself), or the session's first row if it never changed.

Feeding these to the kernel before the partition's rows reproduces the exact state: after the
latest bp_1 change every fed row has the same bp_1, so no false change is seen in the gaps.
`gather_warmup` walks back through earlier partitions (through a reader callback) until the
subset is complete.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trade_pipeline.features import kernels
from trade_pipeline.features.batch import compute_features

MAX_WINDOW_US = int(kernels.WINDOW_US.max())
MAX_LOOKBACK_PARTITIONS = 31


@dataclass
class Warmup:
    rows: pl.DataFrame | None  # snapshot rows to feed before the partition (None: none)
    complete: bool = True  # False: history ran out before the subset was exact
    partitions_read: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return 0 if self.rows is None else self.rows.height


def select_warmup(history: pl.DataFrame, t0_us: int, start_seen: bool
                  ) -> tuple[pl.DataFrame, bool]:
    """The exact warm-up subset of `history` (one session's rows before t0, time order).

    `start_seen`: history begins at the session's first row. Returns (rows, complete)."""
    n = history.height
    if n == 0:
        return history, True
    ts = history["timestamp"].dt.epoch("us").to_numpy()
    keep = np.zeros(n, dtype=bool)
    first_in_window = int(np.searchsorted(ts, t0_us - MAX_WINDOW_US, side="right"))
    keep[max(first_in_window - 1, 0):] = True
    complete = start_seen or first_in_window > 0
    for name in ("bid_price_1", "ask_price_1"):
        col = history[name].to_numpy()
        changes = np.flatnonzero(col[1:] != col[:-1]) + 1
        if len(changes):
            j = int(changes[-1])
            keep[j - 1] = keep[j] = True
        elif start_seen:
            keep[0] = True
        else:
            complete = False
    return history.filter(pl.Series(keep)), complete


def gather_warmup(first_session: int, t0_us: int,
                  read_previous: Callable[[int], pl.DataFrame | None]) -> Warmup:
    """Warm-up rows for a partition whose first row has `first_session` at time t0.

    read_previous(k) returns the snapshots of the k-th partition before (k = 1: the day
    before), or None when it does not exist."""
    history: pl.DataFrame | None = None
    notes: list[str] = []
    for k in range(1, MAX_LOOKBACK_PARTITIONS + 1):
        prev = read_previous(k)
        if prev is None:
            if history is None:
                notes.append("no previous partition: the first session starts cold")
                return Warmup(None, True, k, notes)
            notes.append(f"partition {k} back is missing: treating the session as starting "
                         "at the earliest row read")
            rows, _ = select_warmup(history, t0_us, start_seen=True)
            return Warmup(rows, False, k, notes)
        prev = prev.sort("timestamp", maintain_order=True)
        same = prev.filter(pl.col("session_id") == first_session)
        if same.height == 0:
            if history is None:
                return Warmup(None, True, k, ["the first session starts in this partition"])
            rows, _ = select_warmup(history, t0_us, start_seen=True)
            return Warmup(rows, True, k, notes)
        history = same if history is None else pl.concat([same, history], how="vertical_relaxed")
        start_seen = prev["session_id"][0] != first_session
        rows, complete = select_warmup(history, t0_us, start_seen=start_seen)
        if complete:
            return Warmup(rows, True, k, notes)
    notes.append(f"session spans more than {MAX_LOOKBACK_PARTITIONS} partitions: lifetimes "
                 "start at the earliest row read")
    rows, _ = select_warmup(history, t0_us, start_seen=True)
    return Warmup(rows, False, MAX_LOOKBACK_PARTITIONS, notes)


def compute_partition(snapshots: pl.DataFrame,
                      read_previous: Callable[[int], pl.DataFrame | None],
                      params: dict | None = None) -> tuple[pl.DataFrame, Warmup]:
    """Features of one partition (one stream), warmed up from the partitions before it."""
    if snapshots.height == 0:
        return compute_features(snapshots, params), Warmup(None)
    snapshots = snapshots.sort("timestamp", maintain_order=True)
    t0 = snapshots["timestamp"].dt.epoch("us")[0]
    warm = gather_warmup(int(snapshots["session_id"][0]), int(t0), read_previous)
    if warm.rows is None or warm.rows.height == 0:
        return compute_features(snapshots, params), warm
    fed = pl.concat([warm.rows.select(snapshots.columns), snapshots], how="vertical_relaxed")
    feats = compute_features(fed, params).slice(warm.rows.height)
    return feats, warm
