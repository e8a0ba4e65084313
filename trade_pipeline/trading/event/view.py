"""What a compiled strategy may read and do, in one place: the local book, its position,
its orders as it knows them, and requests (which go through the entry latency)."""

import math

import numba as nb

from trade_pipeline.trading.event import local
from trade_pipeline.trading.event.layout import (
    A_LPOS,
    C_HIGH,
    C_NOW,
    D_BEST_ASK,
    D_BEST_BID,
    GTX,
    INVALID_MAX,
    INVALID_MIN,
    LIMIT,
    MARKET,
    OF_LLEAVES,
    OI_ID,
    OI_LREQ,
    OI_LSTATUS,
    OI_LTICK,
    OI_SIDE,
    OI_USED,
    P_LOT,
    P_TICK,
    REQ_NONE,
    ST_NEW,
    ST_PARTIAL,
)


@nb.njit(cache=True, inline="always")
def best_bid_tick(S) -> int:
    return S[5][D_BEST_BID]


@nb.njit(cache=True, inline="always")
def best_ask_tick(S) -> int:
    return S[5][D_BEST_ASK]


@nb.njit(cache=True, inline="always")
def book_ok(S) -> bool:
    bb, ba = S[5][D_BEST_BID], S[5][D_BEST_ASK]
    return bb != INVALID_MIN and ba != INVALID_MAX and bb < ba


@nb.njit(cache=True, inline="always")
def mid(S) -> float:
    if not book_ok(S):
        return math.nan
    return (S[5][D_BEST_BID] + S[5][D_BEST_ASK]) * S[1][P_TICK] / 2.0


@nb.njit(cache=True, inline="always")
def position(S) -> float:
    return round(S[18][A_LPOS], 9)


@nb.njit(cache=True, inline="always")
def tick_size(S) -> float:
    return S[1][P_TICK]


@nb.njit(cache=True, inline="always")
def lot_size(S) -> float:
    return S[1][P_LOT]


@nb.njit(cache=True, inline="always")
def now(S) -> int:
    return S[0][C_NOW]


@nb.njit(cache=True, inline="always")
def order_state(S, order_id: int):
    """(exists, side, tick, leaves, cancellable) of an order as the strategy knows it."""
    slot = local.find(S, order_id)
    if slot < 0:
        return False, 0, 0, 0.0, False
    oi, of = S[6], S[7]
    st = oi[slot, OI_LSTATUS]
    live = st in (ST_NEW, ST_PARTIAL) and oi[slot, OI_LREQ] == REQ_NONE
    return True, oi[slot, OI_SIDE], oi[slot, OI_LTICK], of[slot, OF_LLEAVES], live


@nb.njit(cache=True, inline="always")
def any_order(S) -> bool:
    """Any order the strategy has not seen finish (resting, or a request in flight)."""
    oi = S[6]
    found = False
    for slot in range(S[0][C_HIGH]):
        found = found or oi[slot, OI_USED] == 1
    return found


@nb.njit(cache=True, inline="always")
def buy_limit(S, order_id: int, tick: int, qty: float, post_only: bool) -> int:
    return local.submit(S, order_id, 1, LIMIT, GTX if post_only else 0, tick * S[1][P_TICK], qty)


@nb.njit(cache=True, inline="always")
def sell_limit(S, order_id: int, tick: int, qty: float, post_only: bool) -> int:
    return local.submit(S, order_id, -1, LIMIT, GTX if post_only else 0, tick * S[1][P_TICK], qty)


@nb.njit(cache=True, inline="always")
def market(S, order_id: int, side: int, qty: float) -> int:
    return local.submit(S, order_id, side, MARKET, 0, 0.0, qty)


@nb.njit(cache=True, inline="always")
def cancel(S, order_id: int) -> int:
    return local.cancel(S, order_id)


@nb.njit(cache=True, inline="always")
def replace(S, order_id: int, tick: int, qty: float) -> int:
    return local.replace(S, order_id, tick * S[1][P_TICK], qty)


@nb.njit(cache=True, inline="always")
def cancel_all(S) -> int:
    """Cancel every order the strategy can cancel; returns how many were sent."""
    oi = S[6]
    sent = 0
    for slot in range(S[0][C_HIGH]):
        if oi[slot, OI_USED] == 1:
            st = oi[slot, OI_LSTATUS]
            cancellable = st in (ST_NEW, ST_PARTIAL) and oi[slot, OI_LREQ] == REQ_NONE
            if cancellable and local.cancel(S, oi[slot, OI_ID]) >= 0:
                sent += 1
    return sent


@nb.njit(cache=True, inline="always")
def floor_lots(S, qty: float) -> float:
    """`qty` rounded down to whole lots (with a little float slack)."""
    lot = S[1][P_LOT]
    return math.floor(qty / lot + 1e-9) * lot
