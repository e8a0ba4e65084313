"""The strategy side: the book at receive time, order requests, responses, position.

The strategy only knows what has reached it: the local book (events at `local_ts`), and its
orders as the last response described them. Requests are refused here, without reaching
the exchange, when they cannot be valid (unknown, ended or duplicate id, a request already
in flight for that order, a quantity that is not a positive whole number of lots, a price
off the tick grid); refused requests are counted.
Position and fees move when a fill's response arrives (`A_LPOS`, `A_LFEES`).
"""

import math

import numba as nb

from trade_pipeline.market.events import (
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_TYPE_MASK,
    SELL_EVENT,
    TRADE_EVENT,
)
from trade_pipeline.trading.event import depth
from trade_pipeline.trading.event.buses import pop, push
from trade_pipeline.trading.event.latency import entry_latency
from trade_pipeline.trading.event.layout import (
    A_LFEES,
    A_LPOS,
    A_LT_BUY,
    A_LT_N,
    A_LT_SELL,
    A_TOUCH_BUY,
    A_TOUCH_SELL,
    C_ERRORS,
    C_HIGH,
    C_NFREE,
    C_NLOG,
    C_NOW,
    C_RQ_HEAD,
    C_RQ_LAST,
    C_RQ_TAIL,
    C_RS_HEAD,
    C_RS_TAIL,
    FF_FEE,
    FF_QTY,
    FI_LOCAL_TS,
    FI_SIDE,
    INVALID_MAX,
    INVALID_MIN,
    LIMIT,
    NEVER,
    OF_LEAVES,
    OF_LLEAVES,
    OF_LQTY,
    OF_QTY,
    OI_GEN,
    OI_ID,
    OI_INFLIGHT,
    OI_LOG,
    OI_LREQ,
    OI_LSTATUS,
    OI_LTICK,
    OI_SIDE,
    OI_TICK,
    OI_TIF,
    OI_TYPE,
    OI_USED,
    OI_XRESTING,
    OI_XSTATUS,
    OL_ACK_TS,
    OL_END_TS,
    OL_FIRST_FILL_TS,
    OL_ID,
    OL_NFILLS,
    OL_REPLACES,
    OL_SIDE,
    OL_STATUS,
    OL_SUBMIT_TS,
    OL_TICK,
    OL_TIF,
    OL_TYPE,
    OLF_FILLED,
    OLF_QTY,
    OLF_QUEUE_AT_ENTRY,
    P_LOT,
    P_TICK,
    REQ_CANCEL,
    REQ_NEW,
    REQ_NONE,
    REQ_REPLACE,
    RQ_GEN,
    RQ_KIND,
    RQ_LOCAL_TS,
    RQ_SLOT,
    RQ_TICK,
    RS_FILL_FROM,
    RS_FILL_TO,
    RS_GEN,
    RS_KIND,
    RS_REJECTED,
    RS_SLOT,
    RS_STATUS,
    RS_TICK,
    ST_CANCELED,
    ST_EXPIRED,
    ST_FILLED,
    ST_NEW,
    ST_NONE,
    ST_PARTIAL,
)

# Refusal codes of the request functions (>= 0 is the slot used).
E_NO_SLOT = -1  # the order table is full: grow it (`state.grow`) and retry
E_DUPLICATE_ID = -2
E_UNKNOWN_ID = -3
E_IN_FLIGHT = -4
E_BAD_QTY = -5
E_NOT_LIVE = -6
E_BAD_PRICE = -7
E_ENDED = -8  # an id the strategy used, whose order has ended (filled, cancelled, expired)


@nb.njit(cache=True, error_model="numpy")
def process_event(prm, lq, lm, acc, ev: int, px: float, qty: float) -> None:
    kind = ev & EVENT_TYPE_MASK
    if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
        if ev & BUY_EVENT:
            _tick, prev_best, best, _q = depth.update_bid(lq, lm, px, qty, prm[P_TICK], prm[P_LOT])
            if best < prev_best and prev_best != INVALID_MAX:
                t = prev_best * prm[P_TICK]
                if t < acc[A_TOUCH_SELL]:
                    acc[A_TOUCH_SELL] = t
        elif ev & SELL_EVENT:
            _tick, prev_best, best, _q = depth.update_ask(lq, lm, px, qty, prm[P_TICK], prm[P_LOT])
            if best > prev_best and prev_best != INVALID_MIN:
                t = prev_best * prm[P_TICK]
                if t > acc[A_TOUCH_BUY]:
                    acc[A_TOUCH_BUY] = t
    elif kind == TRADE_EVENT:
        acc[A_LT_N] += 1.0
        if ev & BUY_EVENT:
            if px > acc[A_LT_BUY]:
                acc[A_LT_BUY] = px
        elif px < acc[A_LT_SELL]:
            acc[A_LT_SELL] = px
    elif kind == DEPTH_CLEAR_EVENT:
        if ev & BUY_EVENT:
            depth.clear_bids(lq, lm, px, prm[P_TICK])
        elif ev & SELL_EVENT:
            depth.clear_asks(lq, lm, px, prm[P_TICK])
        else:
            depth.clear_bids(lq, lm, px, prm[P_TICK])
            depth.clear_asks(lq, lm, px, prm[P_TICK])


@nb.njit(cache=True, inline="always")
def is_terminal(status: int) -> bool:
    return status in (ST_FILLED, ST_CANCELED, ST_EXPIRED)


@nb.njit(cache=True)
def _free(S, slot: int) -> None:
    cnt, oi, rest = S[0], S[6], S[8]
    oi[slot, OI_USED] = 0
    rest[1, cnt[C_NFREE]] = slot
    cnt[C_NFREE] += 1


@nb.njit(cache=True)
def process_response(S) -> int:
    """Deliver the response at the head of the bus; returns its slot."""
    cnt, oi, of, rs, rsf, fi, ff, acc = S[0], S[6], S[7], S[11], S[12], S[13], S[14], S[18]
    r = pop(cnt, C_RS_HEAD, C_RS_TAIL)
    now = rs[r, 0]
    slot = rs[r, RS_SLOT]
    kind = rs[r, RS_KIND]
    if rs[r, RS_GEN] != oi[slot, OI_GEN] or oi[slot, OI_USED] == 0:
        return slot  # about an order the strategy has already seen end (its slot is reused)
    if rs[r, RS_REJECTED] == 1:
        if oi[slot, OI_LREQ] == kind:
            oi[slot, OI_LREQ] = REQ_NONE
        # what the exchange holds stands (a replace did not happen)
        oi[slot, OI_LTICK] = rs[r, RS_TICK]
        of[slot, OF_LLEAVES] = rsf[r, 0]
        of[slot, OF_LQTY] = rsf[r, 1]
    else:
        oi[slot, OI_LSTATUS] = rs[r, RS_STATUS]
        oi[slot, OI_LTICK] = rs[r, RS_TICK]
        of[slot, OF_LLEAVES] = rsf[r, 0]
        of[slot, OF_LQTY] = rsf[r, 1]
        if kind != REQ_NONE and oi[slot, OI_LREQ] == kind:
            oi[slot, OI_LREQ] = REQ_NONE
        for k in range(rs[r, RS_FILL_FROM], rs[r, RS_FILL_TO]):
            fi[k, FI_LOCAL_TS] = now
            acc[A_LPOS] += fi[k, FI_SIDE] * ff[k, FF_QTY]
            acc[A_LFEES] += ff[k, FF_FEE]
    if is_terminal(oi[slot, OI_LSTATUS]):
        _free(S, slot)  # later messages about it are stale (generation check)
    return slot


# ---- requests ---------------------------------------------------------------------------------
@nb.njit(cache=True, inline="always")
def find(S, order_id: int) -> int:
    """The slot of a live order id (as the strategy knows it), or -1."""
    cnt, oi = S[0], S[6]
    for slot in range(cnt[C_HIGH]):
        if oi[slot, OI_USED] == 1 and oi[slot, OI_ID] == order_id:
            return slot
    return -1


@nb.njit(cache=True)
def _request(S, slot: int, kind: int, tick: int, qty: float) -> None:
    cnt, prm, oi, rq, rqf, lat = S[0], S[1], S[6], S[9], S[10], S[17]
    now = cnt[C_NOW]
    ts = now + entry_latency(prm, lat, now)
    r = push(cnt, rq, C_RQ_HEAD, C_RQ_TAIL, C_RQ_LAST, ts)
    rq[r, RQ_SLOT] = slot
    rq[r, RQ_KIND] = kind
    rq[r, RQ_TICK] = tick
    rq[r, RQ_LOCAL_TS] = now
    rqf[r, 0] = qty
    rq[r, RQ_GEN] = oi[slot, OI_GEN]
    oi[slot, OI_INFLIGHT] += 1
    oi[slot, OI_LREQ] = kind


@nb.njit(cache=True)
def lots(prm, qty: float) -> float:
    """`qty` as a whole number of lots (the exact decimal: 8 lots of 0.001 are 0.008, not
    8 * 0.001), or 0.0 when it is not a positive whole number of lots: the exchange
    refuses such a quantity, and rounding it would trade what nobody asked for."""
    n = depth.steps_of(qty, prm[P_LOT])
    if not n > 0.0:
        return 0.0
    return depth.tick_price(int(n), prm[P_LOT])


@nb.njit(cache=True)
def price_tick(prm, price: float) -> int:
    """The tick of a limit price, or INVALID_MIN when the price is not a multiple of the
    tick size (refused, as the exchange does; never rounded to a more aggressive price)."""
    t = depth.steps_of(price, prm[P_TICK])
    if not t > 0.0:
        return INVALID_MIN
    return int(t)


@nb.njit(cache=True)
def _unknown(S, order_id: int) -> int:
    """E_ENDED when the order log holds `order_id` (its order has ended), else E_UNKNOWN_ID."""
    cnt, ol = S[0], S[15]
    for lg in range(cnt[C_NLOG] - 1, -1, -1):
        if ol[lg, OL_ID] == order_id:
            return E_ENDED
    return E_UNKNOWN_ID


@nb.njit(cache=True)
def submit(S, order_id: int, side: int, order_type: int, tif: int, price: float, qty: float) -> int:
    """A new order (limit or market); returns its slot or an E_* code."""
    cnt, prm, oi, of, rest, ol, olf = S[0], S[1], S[6], S[7], S[8], S[15], S[16]
    q = lots(prm, qty)
    if not q > 0.0:
        cnt[C_ERRORS] += 1
        return E_BAD_QTY
    tick = price_tick(prm, price) if order_type == LIMIT else 0
    if tick == INVALID_MIN:
        cnt[C_ERRORS] += 1
        return E_BAD_PRICE
    if find(S, order_id) >= 0:
        cnt[C_ERRORS] += 1
        return E_DUPLICATE_ID
    if cnt[C_NFREE] > 0:
        cnt[C_NFREE] -= 1
        slot = rest[1, cnt[C_NFREE]]
    elif cnt[C_HIGH] < oi.shape[0]:
        slot = cnt[C_HIGH]
        cnt[C_HIGH] += 1
    else:
        return E_NO_SLOT
    lg = cnt[C_NLOG]
    if lg >= ol.shape[0]:
        if slot == cnt[C_HIGH] - 1:
            cnt[C_HIGH] -= 1
        else:
            rest[1, cnt[C_NFREE]] = slot
            cnt[C_NFREE] += 1
        return E_NO_SLOT
    cnt[C_NLOG] = lg + 1
    gen = oi[slot, OI_GEN] + 1
    oi[slot, :] = 0
    oi[slot, OI_GEN] = gen
    oi[slot, OI_ID] = order_id
    oi[slot, OI_SIDE] = side
    oi[slot, OI_TYPE] = order_type
    oi[slot, OI_TIF] = tif
    oi[slot, OI_TICK] = tick
    oi[slot, OI_XSTATUS] = ST_NONE
    oi[slot, OI_LSTATUS] = ST_NONE
    oi[slot, OI_LTICK] = tick
    oi[slot, OI_USED] = 1
    oi[slot, OI_LOG] = lg
    oi[slot, OI_XRESTING] = 0
    of[slot, :] = 0.0
    of[slot, OF_QTY] = q
    of[slot, OF_LEAVES] = q
    of[slot, OF_LQTY] = q
    of[slot, OF_LLEAVES] = q
    ol[lg, :] = 0
    ol[lg, OL_ID] = order_id
    ol[lg, OL_SIDE] = side
    ol[lg, OL_TYPE] = order_type
    ol[lg, OL_TIF] = tif
    ol[lg, OL_SUBMIT_TS] = cnt[C_NOW]
    ol[lg, OL_ACK_TS] = NEVER
    ol[lg, OL_END_TS] = NEVER
    ol[lg, OL_STATUS] = ST_NONE
    ol[lg, OL_TICK] = tick
    ol[lg, OL_REPLACES] = 0
    ol[lg, OL_FIRST_FILL_TS] = NEVER
    ol[lg, OL_NFILLS] = 0
    olf[lg, :] = 0.0
    olf[lg, OLF_QTY] = q
    olf[lg, OLF_FILLED] = 0.0
    olf[lg, OLF_QUEUE_AT_ENTRY] = 0.0
    _request(S, slot, REQ_NEW, tick, q)
    return slot


@nb.njit(cache=True)
def _live_slot(S, order_id: int) -> int:
    cnt, oi = S[0], S[6]
    slot = find(S, order_id)
    if slot < 0:
        cnt[C_ERRORS] += 1
        return _unknown(S, order_id)
    if oi[slot, OI_LREQ] != REQ_NONE:
        cnt[C_ERRORS] += 1
        return E_IN_FLIGHT
    st = oi[slot, OI_LSTATUS]
    if st != ST_NEW and st != ST_PARTIAL:
        cnt[C_ERRORS] += 1
        return E_NOT_LIVE
    return slot


@nb.njit(cache=True)
def cancel(S, order_id: int) -> int:
    slot = _live_slot(S, order_id)
    if slot >= 0:
        _request(S, slot, REQ_CANCEL, S[6][slot, OI_TICK], 0.0)
    return slot


@nb.njit(cache=True)
def replace(S, order_id: int, price: float, qty: float) -> int:
    """Move a resting order to `price` with `qty` left (same price, less qty: keeps its place)."""
    prm = S[1]
    q = lots(prm, qty)
    if not q > 0.0:
        S[0][C_ERRORS] += 1
        return E_BAD_QTY
    tick = price_tick(prm, price)
    if tick == INVALID_MIN:
        S[0][C_ERRORS] += 1
        return E_BAD_PRICE
    slot = _live_slot(S, order_id)
    if slot >= 0:
        _request(S, slot, REQ_REPLACE, tick, q)
        S[6][slot, OI_LTICK] = tick
        S[7][slot, OF_LQTY] = q
    return slot



@nb.njit(cache=True)
def clear_last_trades(acc) -> None:
    acc[A_LT_BUY] = -math.inf
    acc[A_LT_SELL] = math.inf
    acc[A_LT_N] = 0.0
    acc[A_TOUCH_BUY] = -math.inf
    acc[A_TOUCH_SELL] = math.inf
