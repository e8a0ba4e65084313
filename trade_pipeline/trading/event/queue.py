"""Queue-position models, as hftbacktest defines them (`backtest/models/queue.rs`).

A resting order keeps `front`: the quantity ahead of it at its price. It starts at the size
of the level when the order arrives (we join the back of the queue).

- risk-averse (`Q_RISK_AVERSE`): the queue ahead shrinks only by trades at our price, and
  when the level shrinks below it (`front = min(front, new level size)`): cancellations are
  assumed to come from behind us.
- probabilistic (`Q_PROB_POWER`, `Q_PROB_LOG`): when the level shrinks by `chg` (not counting
  what trades at our price already removed), the part of it that came from ahead of us is
  `(1 - p) * chg` with `p = f(back) / (f(back) + f(front))`, `back = level - front`, and
  f(x) = x**n (power) or log(1 + x) (log). A level that grows leaves `front` unchanged.

An order fills by `-front` rounded to lots once trades have taken the whole queue ahead
(`front` < 0), and `front` is then reset to 0. NaN arithmetic follows Rust (`rmin`).
"""

import math

import numba as nb

from trade_pipeline.trading.event.depth import rmin, rust_round
from trade_pipeline.trading.event.layout import (
    OF_CUM,
    OF_FRONT,
    Q_PROB_LOG,
    Q_PROB_POWER,
    Q_RISK_AVERSE,
)


@nb.njit(cache=True, inline="always")
def on_new(of, slot: int, level_qty: float) -> None:
    of[slot, OF_FRONT] = level_qty
    of[slot, OF_CUM] = 0.0


@nb.njit(cache=True, inline="always")
def on_trade(of, slot: int, qty: float) -> None:
    of[slot, OF_FRONT] -= qty
    of[slot, OF_CUM] += qty


@nb.njit(cache=True, inline="always", error_model="numpy")
def _f(kind: int, n: float, x: float) -> float:
    if kind == Q_PROB_LOG:
        return math.log(1.0 + x)
    return x**n


@nb.njit(cache=True, error_model="numpy")  # 0/0 is NaN (as in Rust), not an exception
def on_depth(of, slot: int, prev_qty: float, new_qty: float, kind: int, n: float) -> None:
    if kind == Q_RISK_AVERSE:
        of[slot, OF_FRONT] = rmin(of[slot, OF_FRONT], new_qty)
        return
    chg = prev_qty - new_qty - of[slot, OF_CUM]  # trades at our price are already counted
    of[slot, OF_CUM] = 0.0
    if chg < 0.0:
        of[slot, OF_FRONT] = rmin(of[slot, OF_FRONT], new_qty)
        return
    front = of[slot, OF_FRONT]
    back = prev_qty - front
    fb = _f(kind, n, back)
    prob = fb / (fb + _f(kind, n, front))
    if math.isinf(prob):
        prob = 1.0
    est = front - (1.0 - prob) * chg + min(back - prob * chg, 0.0)
    of[slot, OF_FRONT] = rmin(est, new_qty)


@nb.njit(cache=True, inline="always")
def filled_qty(of, slot: int, lot_size: float) -> float:
    """What the trades beyond the queue ahead filled (in whole lots); resets the queue."""
    lots = rust_round(-of[slot, OF_FRONT] / lot_size)
    if lots > 0.0:
        of[slot, OF_FRONT] = 0.0
        return lots * lot_size
    return 0.0


QUEUE_MODELS = {"risk_averse": Q_RISK_AVERSE, "prob_power": Q_PROB_POWER, "prob_log": Q_PROB_LOG}
