"""Positions and PnL of a linear perpetual (USDT-margined): average-cost accounting.

One `Account` per strategy run. A fill of signed quantity either adds to the position
(the average entry price moves), reduces it (PnL is realized against the average entry
price) or crosses zero (a reversal: the closing part realizes PnL, the rest opens a new
position at the fill price). Fees are charged on each fill's notional; in a reversal they
are split between the two parts pro rata, so each round trip carries its own fees.

equity(mark) = initial_capital + realized - fees - funding + position * (mark - avg_price)
"""

from dataclasses import dataclass, field

EPS_QTY = 1e-9


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


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
        price = notional / qty
        self.fees += fee
        self.traded_notional += notional
        pos = self.position
        realized = 0.0
        if abs(pos) < EPS_QTY or _sign(pos) == side:
            # Opening or adding: new average entry price.
            if abs(pos) < EPS_QTY:
                self.trip_open_us = ts_us
                self.trip_pnl = 0.0
            new_pos = pos + side * qty
            self.avg_price = (self.avg_price * abs(pos) + notional) / abs(new_pos)
            self.position = round(new_pos, 9)
            self.trip_pnl -= fee
            return 0.0
        close_qty = min(qty, abs(pos))
        realized = close_qty * (price - self.avg_price) * _sign(pos)
        close_fee = fee * close_qty / qty
        self.realized += realized
        self.trip_pnl += realized - close_fee
        new_pos = round(pos + side * qty, 9)
        if abs(new_pos) < EPS_QTY:
            self._close_trip(ts_us, _sign(pos))
            self.position = 0.0
            self.avg_price = 0.0
        elif _sign(new_pos) == _sign(pos):
            self.position = new_pos  # partly reduced; the average entry price stays
        else:
            # Reversal: the rest opens a new position at this fill's price.
            self._close_trip(ts_us, _sign(pos))
            self.position = new_pos
            self.avg_price = price
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
        return self.initial_capital + self.realized - self.fees - self.funding + self.unrealized(mark)
