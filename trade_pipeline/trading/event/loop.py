"""The merged event loop: four time-ordered queues, processed in time order.

- local data: events flagged LOCAL_EVENT, at `local_ts` (the strategy's book);
- local orders: responses arriving at the strategy;
- exchange data: events flagged EXCH_EVENT, at `exch_ts` (the matching book);
- exchange orders: requests arriving at the exchange.

At equal times the order is the one above (hftbacktest's `EventSet`): a request that
reaches the exchange at t meets the book after every market event of time t.

`run_until(S, events, until)` processes every intent with time <= `until` and stops. When
events are still being appended (paper trading: `C_FINISHED` is 0), a request runs only once
no market event that has not arrived yet can come before it, and the call completes only
once both clocks of the stream have moved past `until`. Otherwise it returns RUN_NEED_DATA,
and a later call resumes exactly there, so a stream fed in pieces gives the run of the whole
stream. RUN_END: nothing is left at all (no event, no message in flight).
"""

import numba as nb

from trade_pipeline.market.events import EXCH_EVENT, LOCAL_EVENT
from trade_pipeline.trading.event import exchange, local
from trade_pipeline.trading.event.buses import free_rows, head_ts, pop
from trade_pipeline.trading.event.layout import (
    C_FINISHED,
    C_HIGH,
    C_LAST_EXCH_TS,
    C_LAST_FEED_LAT,
    C_LAST_LOCAL_TS,
    C_LEVENTS,
    C_LROW,
    C_NEV,
    C_NFILL,
    C_NFREE,
    C_NLOG,
    C_NOW,
    C_NREST,
    C_RQ_HEAD,
    C_RQ_TAIL,
    C_RS_HEAD,
    C_RS_TAIL,
    C_XEVENTS,
    C_XNOW,
    C_XROW,
    NEVER,
    OI_GEN,
    OI_INFLIGHT,
    RQ_GEN,
    RQ_KIND,
    RQ_SLOT,
    RQ_TICK,
    RUN_DONE,
    RUN_END,
    RUN_NEED_DATA,
    RUN_NEED_SPACE,
)

# Headroom a step needs: one exchange event can fill every resting order (a fill and a
# response each); a market order walks up to MAX_WALK_LEVELS levels.
FILL_HEADROOM = exchange.MAX_WALK_LEVELS + 16


@nb.njit(cache=True)
def has_room(cnt, rq, rqf, rs, rsf, fi) -> bool:
    need = cnt[C_NREST] + 16
    if fi.shape[0] - cnt[C_NFILL] < FILL_HEADROOM + need:
        return False
    if free_rows(cnt, rs, rsf, C_RS_HEAD, C_RS_TAIL) < need:
        return False
    return not free_rows(cnt, rq, rqf, C_RQ_HEAD, C_RQ_TAIL) < 16


@nb.njit(cache=True)
def room_for_orders(cnt, oi, rq, rqf, ol, n: int) -> bool:
    """Room for the strategy to send `n` more requests (slots, order-log rows, bus rows)."""
    free_slots = oi.shape[0] - cnt[C_HIGH] + cnt[C_NFREE]
    return (free_slots >= n and ol.shape[0] - cnt[C_NLOG] >= n
            and free_rows(cnt, rq, rqf, C_RQ_HEAD, C_RQ_TAIL) >= n + 16)


@nb.njit(cache=True)
def _next_row(events, row: int, n: int, flag: int) -> int:
    while row < n and (events[row].ev & flag) == 0:
        row += 1
    return row


@nb.njit(cache=True, error_model="numpy")
def run_until(S, events, until: int) -> int:
    """Process every intent with time <= `until` (see the module docstring).

    Within one call the strategy sends nothing (it acts between calls), so the two sides are
    independent: the exchange side merges market events and requests (requests after market
    events of the same time), and its fills only push responses; the local side applies
    market events and responses, whose order does not matter (one moves the local book, the
    other the orders and the position). Each side runs as a tight loop of its own."""
    # Arrays unpacked once, and the state tuple passed on only for steps that touch orders:
    # per event, taking arrays out of the tuple or passing it costs more than the book update.
    cnt, prm, xq, xm, lq, lm = S[0], S[1], S[2], S[3], S[4], S[5]
    oi, of, rest, rq, rqf, rs, rsf, fi, acc = S[6], S[7], S[8], S[9], S[10], S[11], S[12], S[13], S[18]
    n = cnt[C_NEV]
    finished = cnt[C_FINISHED] == 1
    last_local = cnt[C_LAST_LOCAL_TS]
    last_exch = cnt[C_LAST_EXCH_TS]
    if not has_room(cnt, rq, rqf, rs, rsf, fi):
        return RUN_NEED_SPACE
    # ---- exchange side ----------------------------------------------------------------------
    xrow = cnt[C_XROW]
    xnow = cnt[C_XNOW]
    n_exch = 0
    t_xo = head_ts(cnt, rq, C_RQ_HEAD, C_RQ_TAIL)
    x_complete = True
    while True:
        while xrow < n and (events[xrow].ev & EXCH_EVENT) == 0:
            xrow += 1
        t_xd = events[xrow].exch_ts if xrow < n else NEVER
        if xrow < n and t_xd <= until and t_xd <= t_xo:  # market events first at equal times
            e = events[xrow]
            xrow += 1
            n_exch += 1
            xnow = t_xd
            if cnt[C_NREST] == 0:
                exchange.book_event(prm, xq, xm, e.ev, e.px, e.qty)
            else:
                todo, side, tick = exchange.market_event(cnt, prm, xq, xm, oi, of, rest, e.ev, e.px, e.qty)
                if todo != exchange.NOTHING:
                    if todo == exchange.CROSS_FILLS:
                        exchange.cross_fills(S, side, tick, t_xd)
                    else:
                        exchange.trade_fills(S, side, tick, e.qty, t_xd)
                    if not has_room(cnt, rq, rqf, rs, rsf, fi):
                        cnt[C_XROW] = xrow
                        cnt[C_XNOW] = xnow
                        cnt[C_XEVENTS] += n_exch
                        return RUN_NEED_SPACE
            continue
        if t_xo != NEVER and t_xo <= until:
            # a request: only once no market event of its time or earlier can still arrive
            if xrow >= n and not finished and t_xo >= last_exch:
                x_complete = False
                break
            r = pop(cnt, C_RQ_HEAD, C_RQ_TAIL)
            slot = rq[r, RQ_SLOT]
            kind_rq = rq[r, RQ_KIND]
            tick = rq[r, RQ_TICK]
            qty = rqf[r, 0]
            if rq[r, RQ_GEN] == oi[slot, OI_GEN]:
                oi[slot, OI_INFLIGHT] -= 1  # the request has arrived
                exchange.process_request(S, slot, kind_rq, tick, qty, t_xo)
            # else: about an order that has ended and whose slot the strategy reused
            xnow = t_xo
            t_xo = head_ts(cnt, rq, C_RQ_HEAD, C_RQ_TAIL)
            if not has_room(cnt, rq, rqf, rs, rsf, fi):
                cnt[C_XROW] = xrow
                cnt[C_XNOW] = xnow
                cnt[C_XEVENTS] += n_exch
                return RUN_NEED_SPACE
            continue
        if xrow >= n and not finished and until >= last_exch:
            x_complete = False  # market events of time <= until may still arrive
        break
    cnt[C_XROW] = xrow
    cnt[C_XNOW] = xnow
    cnt[C_XEVENTS] += n_exch
    # ---- local side --------------------------------------------------------------------------
    lrow = cnt[C_LROW]
    now = cnt[C_NOW]
    n_local = 0
    feed_lat = cnt[C_LAST_FEED_LAT]
    while True:
        while lrow < n and (events[lrow].ev & LOCAL_EVENT) == 0:
            lrow += 1
        if lrow >= n:
            break
        e = events[lrow]
        if e.local_ts > until:
            break
        local.process_event(prm, lq, lm, acc, e.ev, e.px, e.qty)
        now = e.local_ts
        feed_lat = e.local_ts - e.exch_ts
        n_local += 1
        lrow += 1
    l_complete = lrow < n or finished or until < last_local
    t_lo = head_ts(cnt, rs, C_RS_HEAD, C_RS_TAIL)
    while t_lo != NEVER and t_lo <= until:
        local.process_response(S)
        if t_lo > now:
            now = t_lo
        t_lo = head_ts(cnt, rs, C_RS_HEAD, C_RS_TAIL)
    cnt[C_LROW] = lrow
    cnt[C_LEVENTS] += n_local
    cnt[C_LAST_FEED_LAT] = feed_lat
    if not (x_complete and l_complete):
        cnt[C_NOW] = now
        return RUN_NEED_DATA
    if until != NEVER:
        cnt[C_NOW] = until
    else:
        cnt[C_NOW] = now
    # nothing left at all (hftbacktest's EndOfData): no event on either side, no message
    while lrow < n and (events[lrow].ev & LOCAL_EVENT) == 0:
        lrow += 1
    if (finished and xrow >= n and lrow >= n and head_ts(cnt, rq, C_RQ_HEAD, C_RQ_TAIL) == NEVER
            and head_ts(cnt, rs, C_RS_HEAD, C_RS_TAIL) == NEVER):
        return RUN_END
    return RUN_DONE


def order_arrays(state) -> tuple:
    """The arrays `room_for_orders` reads, from an EngineState."""
    return state.cnt, state.oi, state.rq, state.rqf, state.ol
