"""Training labels, defined apart from the features: forward mid returns and a 3-class direction.

Definition (the contract; tests check each clause):

- Horizon `h` (e.g. "5s"). For the row at time `t` in session `s` (within one exchange and
  symbol), the forward return is `mid(t+h) / mid(t) - 1`, where `mid(t+h)` is the `mid_price`
  of the **last row of session s whose time is <= t+h**. Grid rows can be missing inside a
  session (crossed or empty books are skipped), so "last row at or before" is the honest
  choice: it uses only what was known at `t+h`.
- The return is **null** when session `s` ends before `t+h` (its last row's time is < t+h):
  the book after the session's end is unknown, so no value is made up, and no value is taken
  from another session. It is also null where either mid is null.
- Only rows in `(t, t+h]` of the same session can influence the label at `t`; rows after `t+h`
  only matter through the existence of a row at or after `t+h` (the session must reach it).
- Direction: +1 if `r >= z`, -1 if `r <= -z`, 0 if `|r| < z`, null where `r` is null, with the
  dead zone `z = dead_zone_factor * mean(spread / mid_price)` (default factor 0.5: half the
  mean spread in return units). `z` is a statistic: callers compute it on the fit window only
  (`dead_zone(frame_of_fit_rows)`) and pass it in, so test rows never shape their own labels.
- Nothing is back-filled or forward-filled; nulls stay null and training drops those rows.
"""

import datetime as dt
import math
import re

import numpy as np
import polars as pl

from trade_pipeline.errors import TradePipelineError

DEFAULT_HORIZONS: tuple[str, ...] = ("1s", "5s", "30s")
DEFAULT_DEAD_ZONE_FACTOR = 0.5

_HORIZON_RE = re.compile(r"^(\d+)(ms|s|m)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000}


class LabelError(TradePipelineError, ValueError):
    """The frame or the horizon cannot be labelled; the message says why."""


def parse_horizon(horizon: str | dt.timedelta) -> dt.timedelta:
    """'500ms', '1s', '5s', '30s', '1m' -> timedelta (strictly positive)."""
    if isinstance(horizon, dt.timedelta):
        delta = horizon
    else:
        match = _HORIZON_RE.match(str(horizon).strip())
        if not match:
            raise LabelError(f"invalid horizon {horizon!r}: expected e.g. 500ms, 1s, 5s, 30s, 1m")
        delta = dt.timedelta(milliseconds=int(match.group(1)) * _UNIT_MS[match.group(2)])
    if delta <= dt.timedelta(0):
        raise LabelError(f"horizon must be positive, got {horizon!r}")
    return delta


def horizon_rows(horizon: str | dt.timedelta, cadence_ms: float) -> int:
    """Grid rows one label spans: how many neighbouring labels overlap (sizes every
    significance test's blocks)."""
    ms = parse_horizon(horizon) / dt.timedelta(milliseconds=1)
    return max(1, math.ceil(ms / cadence_ms))


def horizon_name(horizon: str | dt.timedelta) -> str:
    """Canonical short name: 5000 ms -> '5s', 60 s -> '1m', 500 ms -> '500ms'."""
    ms = int(parse_horizon(horizon) / dt.timedelta(milliseconds=1))
    if ms % 60_000 == 0:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def return_column(horizon: str | dt.timedelta) -> str:
    return f"fwd_return_{horizon_name(horizon)}"


def direction_column(horizon: str | dt.timedelta) -> str:
    return f"direction_{horizon_name(horizon)}"


def _group_keys(frame: pl.DataFrame) -> list[str]:
    keys = [c for c in ("exchange", "symbol") if c in frame.columns]
    return [*keys, "session_id"]


def _check_frame(frame: pl.DataFrame, price_col: str) -> None:
    missing = [c for c in ("timestamp", "session_id", price_col) if c not in frame.columns]
    if missing:
        raise LabelError(f"frame lacks column(s) {missing} needed for labels")
    keys = _group_keys(frame)
    dupes = frame.select([*keys, "timestamp"]).is_duplicated().sum()
    if dupes:
        raise LabelError(f"{dupes} rows share (session, timestamp): labels would be ambiguous")


def forward_returns(
    frame: pl.DataFrame, horizon: str | dt.timedelta, price_col: str = "mid_price"
) -> pl.Series:
    """Forward return over `horizon` for every row, aligned with `frame`'s row order.

    See the module docstring for the exact definition (same session, last row <= t+h,
    null when the session ends before t+h)."""
    _check_frame(frame, price_col)
    delta = parse_horizon(horizon)
    keys = _group_keys(frame)
    name = return_column(horizon)
    if frame.height == 0:
        return pl.Series(name, [], dtype=pl.Float64)
    base = frame.select(
        [*keys, "timestamp", pl.col(price_col).cast(pl.Float64).alias("_p0")]
    ).with_row_index("_row")
    base = base.with_columns(
        (pl.col("timestamp") + pl.duration(microseconds=delta // dt.timedelta(microseconds=1)))
        .alias("_target"),
        pl.col("timestamp").max().over(keys).alias("_session_end"),
    )
    right = base.select([*keys, pl.col("timestamp").alias("_t1"), pl.col("_p0").alias("_p1")])
    left = base.sort("_target")
    right = right.sort("_t1")
    joined = left.join_asof(
        right, left_on="_target", right_on="_t1", by=keys, strategy="backward",
        check_sortedness=False,
    )
    out = joined.select(
        "_row",
        pl.when(pl.col("_session_end") >= pl.col("_target"))
        .then(pl.col("_p1") / pl.col("_p0") - 1.0)
        .otherwise(None)
        .alias(name),
    ).sort("_row")
    # A non-finite ratio (zero or null mid) is not a return: keep it null, never 0.
    series = out.get_column(name)
    return series.set(~series.is_finite().fill_null(False), None).rename(name)


def dead_zone(frame: pl.DataFrame, factor: float = DEFAULT_DEAD_ZONE_FACTOR) -> float:
    """`factor * mean(spread / mid_price)` over the given rows (pass the fit window only)."""
    if factor < 0:
        raise LabelError(f"dead-zone factor must be >= 0, got {factor}")
    for col in ("spread", "mid_price"):
        if col not in frame.columns:
            raise LabelError(f"frame lacks column {col!r} needed for the dead zone")
    rel = (frame.get_column("spread") / frame.get_column("mid_price")).drop_nulls()
    rel = rel.filter(rel.is_finite())
    if rel.len() == 0:
        raise LabelError("no rows with a spread and a mid: cannot size the dead zone")
    return float(factor * rel.mean())


def direction_labels(returns: pl.Series | np.ndarray, zone: float) -> pl.Series:
    """+1 / 0 / -1 with dead zone `zone` (in return units); null where the return is null."""
    if not np.isfinite(zone) or zone < 0:
        raise LabelError(f"dead zone must be a finite value >= 0, got {zone}")
    r = returns if isinstance(returns, pl.Series) else pl.Series("r", returns)
    r = r.fill_nan(None) if r.dtype in (pl.Float32, pl.Float64) else r
    name = r.name.replace("fwd_return_", "direction_") if r.name else "direction"
    return (
        pl.select(
            pl.when(r.is_null()).then(None)
            .when(r >= zone).then(1)
            .when(r <= -zone).then(-1)
            .otherwise(0)
            .cast(pl.Int8)
            .alias(name)
        ).to_series()
    )


def add_labels(
    frame: pl.DataFrame,
    horizons: tuple[str, ...] = DEFAULT_HORIZONS,
    zone: float | None = None,
    dead_zone_factor: float = DEFAULT_DEAD_ZONE_FACTOR,
) -> pl.DataFrame:
    """`frame` plus `fwd_return_<h>` and `direction_<h>` for each horizon.

    `zone=None` sizes the dead zone from `frame` itself: right for a frame that is all fit
    window; for train/test work pass the fit window's `dead_zone(...)` explicitly."""
    if zone is None:
        zone = dead_zone(frame, dead_zone_factor)
    cols = []
    for h in horizons:
        ret = forward_returns(frame, h)
        cols += [ret, direction_labels(ret, zone)]
    return frame.with_columns(cols)
