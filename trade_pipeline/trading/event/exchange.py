"""The exchange side: the book at exchange time and the matching of our orders against it.

Rules (hftbacktest's `PartialFillExchange` unless said otherwise):
- A limit order that does not cross rests at its price behind the level's current size
  (queue model `on_new`). A post-only (GTX) order that would cross expires: rejected.
- A crossing GTC limit order takes the opposite levels from the best up to its price, each
  level at its own price (taker), and the rest rests at its price. (hftbacktest fills all of
  the rest at the limit price as taker, whatever the book holds there.)
- A market order walks the opposite side level by level, one fill per level, until filled
  or the side is empty (at most `MAX_WALK_LEVELS` levels); the rest expires. (hftbacktest
  walks at most 100 ticks.)
- A resting order fills as maker at its own price: fully when a trade goes through its
  price or the opposite best price moves through it; partially, by what the trades at its
  price took beyond the queue ahead, in whole lots.
- Cancel removes a resting order; replace keeps the queue position when only the quantity
  goes down at the same price, otherwise it is a cancel plus a new order (back of the queue).
  Either on an order that is no longer resting is rejected.
- Our orders never change the recorded book: the depth is the market's, not ours.
Every change the strategy must learn of is answered on the response bus.
"""

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
from trade_pipeline.trading.event import depth, queue
from trade_pipeline.trading.event.buses import push
from trade_pipeline.trading.event.latency import response_latency
from trade_pipeline.trading.event.layout import (
    A_XFEES,
    A_XPOS,
    BUY,
    C_NFILL,
    C_NREST,
    C_RS_HEAD,
    C_RS_LAST,
    C_RS_TAIL,
    D_BEST_ASK,
    D_BEST_BID,
    D_CEIL_ASK,
    D_FLOOR_BID,
    FF_FEE,
    FF_LEAVES,
    FF_MID,
    FF_PRICE,
    FF_QTY,
    FI_EXCH_TS,
    FI_ID,
    FI_LOCAL_TS,
    FI_LOG,
    FI_MAKER,
    FI_SIDE,
    FI_TICK,
    GTX,
    INVALID_MAX,
    INVALID_MIN,
    LIMIT,
    NEVER,
    OF_FRONT,
    OF_LEAVES,
    OF_QTY,
    OI_GEN,
    OI_ID,
    OI_LOG,
    OI_SIDE,
    OI_TICK,
    OI_TIF,
    OI_TYPE,
    OI_XRESTING,
    OI_XSTATUS,
    OL_ACK_TS,
    OL_END_TS,
    OL_FIRST_FILL_TS,
    OL_NFILLS,
    OL_REPLACES,
    OL_STATUS,
    OL_TICK,
    OLF_FILLED,
    OLF_QTY,
    OLF_QUEUE_AT_ENTRY,
    P_LOT,
    P_MAKER_FEE,
    P_QUEUE,
    P_QUEUE_N,
    P_TAKER_FEE,
    P_TICK,
    REQ_CANCEL,
    REQ_NEW,
    REQ_NONE,
    REQ_REPLACE,
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
    ST_PARTIAL,
)

MAX_WALK_LEVELS = 2048


# ---- responses and fills --------------------------------------------------------------------
@nb.njit(cache=True)
def respond(S, slot: int, exch_ts: int, kind: int, fill_from: int, fill_to: int, rejected: int) -> None:
    cnt, prm, oi, of, rs, rsf, lat = S[0], S[1], S[6], S[7], S[11], S[12], S[17]
    ts = exch_ts + response_latency(prm, lat, exch_ts)
    r = push(cnt, rs, C_RS_HEAD, C_RS_TAIL, C_RS_LAST, ts)
    rs[r, RS_SLOT] = slot
    rs[r, RS_STATUS] = oi[slot, OI_XSTATUS]
    rs[r, RS_TICK] = oi[slot, OI_TICK]
    rs[r, RS_KIND] = kind
    rs[r, RS_FILL_FROM] = fill_from
    rs[r, RS_FILL_TO] = fill_to
    rs[r, RS_REJECTED] = rejected
    rs[r, RS_GEN] = oi[slot, OI_GEN]
    rsf[r, 0] = of[slot, OF_LEAVES]
    rsf[r, 1] = of[slot, OF_QTY]


@nb.njit(cache=True)
def _unrest(S, slot: int) -> None:
    """Remove a slot from the resting list, keeping the others in arrival order."""
    cnt, oi, rest = S[0], S[6], S[8]
    n = cnt[C_NREST]
    k = 0
    while k < n and rest[0, k] != slot:
        k += 1
    for j in range(k, n - 1):
        rest[0, j] = rest[0, j + 1]
    cnt[C_NREST] = n - 1
    oi[slot, OI_XRESTING] = 0


@nb.njit(cache=True)
def _rest(S, slot: int, ts: int) -> None:
    cnt, prm, xq, xm, oi, of, rest, ol, olf = S[0], S[1], S[2], S[3], S[6], S[7], S[8], S[15], S[16]
    row = 0 if oi[slot, OI_SIDE] == BUY else 1
    level = depth.qty_at(xq, xm, row, oi[slot, OI_TICK])
    queue.on_new(of, slot, level)
    oi[slot, OI_XSTATUS] = ST_NEW if of[slot, OF_LEAVES] == of[slot, OF_QTY] else ST_PARTIAL
    rest[0, cnt[C_NREST]] = slot
    cnt[C_NREST] += 1
    oi[slot, OI_XRESTING] = 1
    lg = oi[slot, OI_LOG]
    if ol[lg, OL_ACK_TS] == NEVER:
        ol[lg, OL_ACK_TS] = ts
        olf[lg, OLF_QUEUE_AT_ENTRY] = level
    ol[lg, OL_STATUS] = oi[slot, OI_XSTATUS]
    _ = prm


@nb.njit(cache=True)
def _end(S, slot: int, ts: int, status: int) -> None:
    """The order leaves the exchange (filled, cancelled, expired)."""
    oi, of, ol, olf = S[6], S[7], S[15], S[16]
    if oi[slot, OI_XRESTING] == 1:
        _unrest(S, slot)
    oi[slot, OI_XSTATUS] = status
    lg = oi[slot, OI_LOG]
    ol[lg, OL_END_TS] = ts
    ol[lg, OL_STATUS] = status
    olf[lg, OLF_QTY] = olf[lg, OLF_FILLED] + (of[slot, OF_LEAVES] if status != ST_FILLED else 0.0)
    if ol[lg, OL_ACK_TS] == NEVER:
        ol[lg, OL_ACK_TS] = ts


@nb.njit(cache=True)
def fill(S, slot: int, ts: int, maker: bool, tick: int, qty: float) -> int:
    """Book one fill of `qty` at `tick`; returns the fill's index. The order's status becomes
    FILLED (and it leaves the book) when what is left rounds to no lot."""
    cnt, prm, xm, oi, of, fi, ff, ol, olf, acc = S[0], S[1], S[3], S[6], S[7], S[13], S[14], S[15], S[16], S[18]
    tick_size = prm[P_TICK]
    leaves = of[slot, OF_LEAVES] - qty
    of[slot, OF_LEAVES] = leaves
    price = depth.tick_price(tick, tick_size)
    amount = price * qty
    fee = amount * (prm[P_MAKER_FEE] if maker else prm[P_TAKER_FEE])
    side = oi[slot, OI_SIDE]
    k = cnt[C_NFILL]
    cnt[C_NFILL] = k + 1
    lg = oi[slot, OI_LOG]
    fi[k, FI_ID] = oi[slot, OI_ID]
    fi[k, FI_SIDE] = side
    fi[k, FI_MAKER] = 1 if maker else 0
    fi[k, FI_EXCH_TS] = ts
    fi[k, FI_LOCAL_TS] = NEVER
    fi[k, FI_TICK] = tick
    fi[k, FI_LOG] = lg
    ff[k, FF_QTY] = qty
    ff[k, FF_PRICE] = price
    ff[k, FF_FEE] = fee
    ff[k, FF_LEAVES] = leaves
    ff[k, FF_MID] = depth.mid(xm, tick_size)
    acc[A_XPOS] += side * qty
    acc[A_XFEES] += fee
    olf[lg, OLF_FILLED] += qty
    ol[lg, OL_NFILLS] += 1
    if ol[lg, OL_FIRST_FILL_TS] == NEVER:
        ol[lg, OL_FIRST_FILL_TS] = ts
    if depth.rust_round(leaves / prm[P_LOT]) > 0.0:
        oi[slot, OI_XSTATUS] = ST_PARTIAL
        ol[lg, OL_STATUS] = ST_PARTIAL
    else:
        _end(S, slot, ts, ST_FILLED)
    return k


@nb.njit(cache=True)
def _maker_fill(S, slot: int, ts: int, qty: float) -> None:
    oi = S[6]
    k = fill(S, slot, ts, True, oi[slot, OI_TICK], qty)
    respond(S, slot, ts, REQ_NONE, k, k + 1, 0)


# ---- market data ----------------------------------------------------------------------------
@nb.njit(cache=True, error_model="numpy")
def _on_level(cnt, prm, oi, of, rest, row: int, tick: int, prev_qty: float, new_qty: float) -> None:
    """A level of our side changed size: the queue ahead of our orders there moves."""
    side = BUY if row == 0 else -1
    kind = int(prm[P_QUEUE])
    n = prm[P_QUEUE_N]
    for k in range(cnt[C_NREST]):
        slot = rest[0, k]
        if oi[slot, OI_SIDE] == side and oi[slot, OI_TICK] == tick:
            queue.on_depth(of, slot, prev_qty, new_qty, kind, n)


@nb.njit(cache=True)
def _cross_fills(S, side: int, best: int, ts: int) -> None:
    """The opposite best moved through resting orders of `side`: they fill at their price."""
    cnt, oi, of, rest = S[0], S[6], S[7], S[8]
    k = 0
    while k < cnt[C_NREST]:
        slot = rest[0, k]
        through = (oi[slot, OI_SIDE] == side) and (
            oi[slot, OI_TICK] <= best if side == -1 else oi[slot, OI_TICK] >= best)
        if through:
            _maker_fill(S, slot, ts, of[slot, OF_LEAVES])  # leaves the list: same k again
        else:
            k += 1


@nb.njit(cache=True)
def _trade_fills(S, side: int, tick: int, qty: float, ts: int) -> None:
    """A public trade at `tick` against resting orders of `side` (the maker side)."""
    cnt, prm, oi, of, rest = S[0], S[1], S[6], S[7], S[8]
    lot = prm[P_LOT]
    k = 0
    while k < cnt[C_NREST]:
        slot = rest[0, k]
        n_before = cnt[C_NREST]
        if oi[slot, OI_SIDE] == side:
            t = oi[slot, OI_TICK]
            through = t < tick if side == -1 else t > tick
            if through:
                _maker_fill(S, slot, ts, of[slot, OF_LEAVES])
            elif t == tick:
                queue.on_trade(of, slot, qty)
                got = queue.filled_qty(of, slot, lot)
                if got > 0.0:
                    leaves = of[slot, OF_LEAVES]
                    _maker_fill(S, slot, ts, leaves if got > leaves else got)
        if cnt[C_NREST] == n_before:
            k += 1


@nb.njit(cache=True, error_model="numpy")
def book_event(prm, xq, xm, ev: int, px: float, qty: float) -> None:
    """A market event when no order of ours rests: only the book moves (the hot path; the
    state tuple is not passed at all, as passing it costs more than the update)."""
    kind = ev & EVENT_TYPE_MASK
    if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
        if ev & BUY_EVENT:
            depth.update_bid(xq, xm, px, qty, prm[P_TICK], prm[P_LOT])
        elif ev & SELL_EVENT:
            depth.update_ask(xq, xm, px, qty, prm[P_TICK], prm[P_LOT])
    elif kind == DEPTH_CLEAR_EVENT:
        if ev & BUY_EVENT:
            depth.clear_bids(xq, xm, px, prm[P_TICK])
        elif ev & SELL_EVENT:
            depth.clear_asks(xq, xm, px, prm[P_TICK])
        else:
            depth.clear_bids(xq, xm, px, prm[P_TICK])
            depth.clear_asks(xq, xm, px, prm[P_TICK])


@nb.njit(cache=True, error_model="numpy")
def _any_through(cnt, oi, rest, side: int, best: int) -> bool:
    found = False
    for k in range(cnt[C_NREST]):
        slot = rest[0, k]
        if oi[slot, OI_SIDE] == side:
            t = oi[slot, OI_TICK]
            found = found or (t <= best if side == -1 else t >= best)
    return found


@nb.njit(cache=True, error_model="numpy")
def _trade_needs_fills(cnt, prm, oi, of, rest, side: int, tick: int, qty: float) -> bool:
    """Would a trade of `qty` at `tick` fill any resting order of `side`? If not, apply it to
    the queues at that price here (the common case, without the state tuple)."""
    lot = prm[P_LOT]
    for k in range(cnt[C_NREST]):
        slot = rest[0, k]
        if oi[slot, OI_SIDE] == side:
            t = oi[slot, OI_TICK]
            if (t < tick if side == -1 else t > tick):
                return True
            if t == tick and depth.rust_round(-(of[slot, OF_FRONT] - qty) / lot) > 0.0:
                return True
    for k in range(cnt[C_NREST]):
        slot = rest[0, k]
        if oi[slot, OI_SIDE] == side and oi[slot, OI_TICK] == tick:
            queue.on_trade(of, slot, qty)
    return False


# What a market event with resting orders leaves to do (the loop then passes the state).
NOTHING, CROSS_FILLS, TRADE_FILLS = 0, 1, 2


@nb.njit(cache=True, error_model="numpy")
def market_event(cnt, prm, xq, xm, oi, of, rest, ev: int, px: float, qty: float):
    """One market event while orders of ours rest: the book moves, the queues ahead of our
    orders move; returns (what is left to do, side, tick) for `cross_fills` / `trade_fills`,
    which need the whole state. Most events end here."""
    tick_size = prm[P_TICK]
    kind = ev & EVENT_TYPE_MASK
    if kind in (DEPTH_EVENT, DEPTH_SNAPSHOT_EVENT):
        if ev & BUY_EVENT:
            tick, prev_best, best, prev_qty = depth.update_bid(xq, xm, px, qty, tick_size, prm[P_LOT])
            _on_level(cnt, prm, oi, of, rest, 0, tick, prev_qty, qty)
            if best > prev_best and _any_through(cnt, oi, rest, -1, best):
                return CROSS_FILLS, -1, best
        elif ev & SELL_EVENT:
            tick, prev_best, best, prev_qty = depth.update_ask(xq, xm, px, qty, tick_size, prm[P_LOT])
            _on_level(cnt, prm, oi, of, rest, 1, tick, prev_qty, qty)
            if best < prev_best and _any_through(cnt, oi, rest, BUY, best):
                return CROSS_FILLS, BUY, best
    elif kind == TRADE_EVENT:
        tick = depth.to_tick(px, tick_size)
        # the taker bought: our asks are the makers; the taker sold: our bids
        side = -1 if ev & BUY_EVENT else (BUY if ev & SELL_EVENT else 0)
        if side != 0 and _trade_needs_fills(cnt, prm, oi, of, rest, side, tick, qty):
            return TRADE_FILLS, side, tick
    elif kind == DEPTH_CLEAR_EVENT:
        book_event(prm, xq, xm, ev, px, qty)
    return NOTHING, 0, 0


@nb.njit(cache=True)
def cross_fills(S, side: int, best: int, ts: int) -> None:
    _cross_fills(S, side, best, ts)


@nb.njit(cache=True)
def trade_fills(S, side: int, tick: int, qty: float, ts: int) -> None:
    _trade_fills(S, side, tick, qty, ts)


# ---- order requests -------------------------------------------------------------------------
@nb.njit(cache=True)
def _take(S, slot: int, ts: int, limit_tick: int) -> None:
    """Take the opposite side from its best up to `limit_tick` (INVALID_* for no limit), one
    fill per level, until the order is filled."""
    prm, xq, xm, oi, of = S[1], S[2], S[3], S[6], S[7]
    lot = prm[P_LOT]
    levels = 0
    if oi[slot, OI_SIDE] == BUY:
        t = xm[D_BEST_ASK]
        stop = xm[D_CEIL_ASK] if limit_tick == INVALID_MAX else min(limit_tick, xm[D_CEIL_ASK])
        if t == INVALID_MAX:
            return
        while t <= stop and levels < MAX_WALK_LEVELS:
            q = depth.qty_at(xq, xm, 1, t)
            if q > 0.0:
                leaves = of[slot, OF_LEAVES]
                fill(S, slot, ts, False, t, q if q < leaves else leaves)
                levels += 1
                if oi[slot, OI_XSTATUS] == ST_FILLED:
                    return
            t += 1
    else:
        t = xm[D_BEST_BID]
        stop = xm[D_FLOOR_BID] if limit_tick == INVALID_MIN else max(limit_tick, xm[D_FLOOR_BID])
        if t == INVALID_MIN:
            return
        while t >= stop and levels < MAX_WALK_LEVELS:
            q = depth.qty_at(xq, xm, 0, t)
            if q > 0.0:
                leaves = of[slot, OF_LEAVES]
                fill(S, slot, ts, False, t, q if q < leaves else leaves)
                levels += 1
                if oi[slot, OI_XSTATUS] == ST_FILLED:
                    return
            t -= 1
    _ = lot


@nb.njit(cache=True)
def _ack_new(S, slot: int, ts: int) -> None:
    cnt, xm, oi = S[0], S[3], S[6]
    side = oi[slot, OI_SIDE]
    tick = oi[slot, OI_TICK]
    first_fill = cnt[C_NFILL]
    if oi[slot, OI_TYPE] == LIMIT:
        crosses = tick >= xm[D_BEST_ASK] if side == BUY else tick <= xm[D_BEST_BID]
        if crosses and oi[slot, OI_TIF] == GTX:
            _end(S, slot, ts, ST_EXPIRED)
        elif crosses:
            _take(S, slot, ts, tick)
            if oi[slot, OI_XSTATUS] != ST_FILLED:
                _rest(S, slot, ts)
        else:
            _rest(S, slot, ts)
    else:
        _take(S, slot, ts, INVALID_MAX if side == BUY else INVALID_MIN)
        if oi[slot, OI_XSTATUS] != ST_FILLED:
            _end(S, slot, ts, ST_EXPIRED)
    respond(S, slot, ts, REQ_NEW, first_fill, cnt[C_NFILL], 0)


@nb.njit(cache=True)
def process_request(S, slot: int, kind: int, tick: int, qty: float, ts: int) -> None:
    """A request from the strategy reaches the exchange at `ts`."""
    oi, of, ol = S[6], S[7], S[15]
    if kind == REQ_NEW:
        _ack_new(S, slot, ts)
        return
    if oi[slot, OI_XRESTING] == 0:
        respond(S, slot, ts, kind, 0, 0, 1)  # nothing to cancel / replace any more
        return
    if kind == REQ_CANCEL:
        _end(S, slot, ts, ST_CANCELED)
        respond(S, slot, ts, REQ_CANCEL, 0, 0, 0)
        return
    # REQ_REPLACE: the order is now for what it has filled plus the new quantity left
    olf = S[16]
    lg = oi[slot, OI_LOG]
    ol[lg, OL_REPLACES] += 1
    olf[lg, OLF_QTY] = olf[lg, OLF_FILLED] + qty
    if tick != oi[slot, OI_TICK] or qty > of[slot, OF_LEAVES]:
        _unrest(S, slot)  # cancel + new: back of the queue at the new price
        oi[slot, OI_TICK] = tick
        of[slot, OF_QTY] = qty
        of[slot, OF_LEAVES] = qty
        ol[oi[slot, OI_LOG], OL_TICK] = tick
        _ack_new(S, slot, ts)
        rs = S[11]
        rs[S[0][C_RS_TAIL] - 1, RS_KIND] = REQ_REPLACE  # the response just pushed answers it
        return
    of[slot, OF_QTY] = qty
    of[slot, OF_LEAVES] = qty
    oi[slot, OI_XSTATUS] = ST_NEW
    respond(S, slot, ts, REQ_REPLACE, 0, 0, 0)

