"""Positions and PnL of a linear perpetual (USDT-margined): average-cost accounting.

One `Account` per strategy run. A fill of signed quantity either adds to the position
(the average entry price moves), reduces it (PnL is realized against the average entry
price) or crosses zero (a reversal: the closing part realizes PnL, the rest opens a new
position at the fill price). Fees are charged on each fill's notional; in a reversal they
are split between the two parts pro rata, so each round trip carries its own fees.

equity(mark) = initial_capital + realized - fees - funding + position * (mark - avg_price)

The rule itself is `settle` (and `equity_of`), plain functions that the grid engine calls
through `Account` and the event engine calls compiled (`settle_nb`, `equity_of_nb`) inside
its loop: one accounting for both.
"""

from dataclasses import dataclass, field

import numba as nb

EPS_QTY = 1e-9


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


# What a fill did to the position (`settle`'s last value).
OPENED, ADDED, REDUCED, CLOSED, REVERSED = 0, 1, 2, 3, 4


def settle(pos: float, avg: float, side: int, qty: float, notional: float):
    """The average-cost rule for one fill of `qty` > 0 (`side` +1 buy / -1 sell) at total
    `notional`, on a position `pos` with average entry price `avg`.

    Returns (new position, new average price, gross realized PnL, closed quantity, kind):
    opening or adding moves the average price; reducing realizes PnL against it; a fill that
    crosses zero closes the old position and opens the rest at the fill's price. Plain
    arithmetic, so the event engine runs the same function compiled (`settle_nb`)."""
    price = notional / qty
    if abs(pos) < EPS_QTY or (pos > 0) == (side > 0):
        new_pos = pos + side * qty
        new_avg = (avg * abs(pos) + notional) / abs(new_pos)
        return round(new_pos, 9), new_avg, 0.0, 0.0, OPENED if abs(pos) < EPS_QTY else ADDED
    close_qty = min(qty, abs(pos))
    sign = 1.0 if pos > 0 else -1.0
    realized = close_qty * (price - avg) * sign
    new_pos = round(pos + side * qty, 9)
    if abs(new_pos) < EPS_QTY:
        return 0.0, 0.0, realized, close_qty, CLOSED
    if (new_pos > 0) == (pos > 0):
        return new_pos, avg, realized, close_qty, REDUCED  # the average entry price stays
    return new_pos, price, realized, close_qty, REVERSED


settle_nb = nb.njit(cache=True)(settle)


def equity_of(initial: float, realized: float, fees: float, funding: float, position: float,
              avg: float, mark: float) -> float:
    """initial + realized - fees - funding + unrealized at `mark` (see the module docstring)."""
    unrealized = position * (mark - avg) if position else 0.0
    return initial + realized - fees - funding + unrealized


equity_of_nb = nb.njit(cache=True)(equity_of)


@dataclass
class RoundTrip:
    """From flat (or a reversal) to flat (or the next reversal); `pnl` is net of fees."""

    open_us: int
    close_us: int
    side: int
    pnl: float


@dataclass
class Account:
    initial_capital: float
    position: float = 0.0  # signed, base currency (BTC)
    avg_price: float = 0.0  # average entry price of the open position (0 when flat)
    realized: float = 0.0  # gross realized PnL (before fees and funding)
    fees: float = 0.0
    funding: float = 0.0
    traded_notional: float = 0.0
    trip_pnl: float = 0.0
    trip_open_us: int = 0
    trips: list[RoundTrip] = field(default_factory=list)

    def apply_fill(self, ts_us: int, side: int, qty: float, notional: float, fee: float) -> float:
        """Book one fill (`side` +1 buy / -1 sell, `qty` > 0 at total `notional`).
        Returns the gross PnL this fill realized."""
        if qty <= 0:
            return 0.0
        self.fees += fee
        self.traded_notional += notional
        pos = self.position
        new_pos, avg, realized, close_qty, kind = settle(pos, self.avg_price, side, qty, notional)
        self.position, self.avg_price = new_pos, avg
        if kind == OPENED:
            self.trip_open_us = ts_us
            self.trip_pnl = -fee
            return 0.0
        if kind == ADDED:
            self.trip_pnl -= fee
            return 0.0
        close_fee = fee * close_qty / qty
        self.realized += realized
        self.trip_pnl += realized - close_fee
        if kind == CLOSED:
            self._close_trip(ts_us, _sign(pos))
        elif kind == REVERSED:
            self._close_trip(ts_us, _sign(pos))
            self.trip_open_us = ts_us
            self.trip_pnl = -(fee - close_fee)
        return realized

    def _close_trip(self, ts_us: int, side: int) -> None:
        self.trips.append(RoundTrip(self.trip_open_us, ts_us, side, self.trip_pnl))
        self.trip_pnl = 0.0

    def apply_funding(self, payment: float) -> None:
        """A funding payment (positive: we pay)."""
        self.funding += payment
        self.trip_pnl -= payment

    def unrealized(self, mark: float) -> float:
        return self.position * (mark - self.avg_price) if self.position else 0.0

    def equity(self, mark: float) -> float:
        return equity_of(self.initial_capital, self.realized, self.fees, self.funding,
                         self.position, self.avg_price, mark)
