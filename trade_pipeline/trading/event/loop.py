"""The merged event loop: four time-ordered queues, processed in time order.

- local data: events flagged LOCAL_EVENT, at `local_ts` (the strategy's book);
- local orders: responses arriving at the strategy;
- exchange data: events flagged EXCH_EVENT, at `exch_ts` (the matching book);
- exchange orders: requests arriving at the exchange.

At equal times the order is the one above (hftbacktest's `EventSet`): a request that
reaches the exchange at t meets the book after every market event of time t.

`run_until(S, events, until)` processes every intent with time <= `until` and stops. When
events are still being appended (paper trading: `C_FINISHED` is 0), an intent at time t
runs only once no event that has not arrived yet can come before it: both clocks of the
stream must have moved past t. Otherwise it returns RUN_NEED_DATA, and a later call
resumes exactly there, so a stream fed in pieces gives the run of the whole stream.
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
    OI_INFLIGHT,
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
def has_room(S) -> bool:
    cnt, rq, rqf, rs, rsf, fi = S[0], S[9], S[10], S[11], S[12], S[13]
    need = cnt[C_NREST] + 16
    if fi.shape[0] - cnt[C_NFILL] < FILL_HEADROOM + need:
        return False
    if free_rows(cnt, rs, rsf, C_RS_HEAD, C_RS_TAIL) < need:
        return False
    return not free_rows(cnt, rq, rqf, C_RQ_HEAD, C_RQ_TAIL) < 16


@nb.njit(cache=True)
def room_for_orders(S, n: int) -> bool:
    """Room for the strategy to send `n` more requests (slots, order-log rows, bus rows)."""
    cnt, oi, rq, rqf, ol = S[0], S[6], S[9], S[10], S[15]
    free_slots = oi.shape[0] - cnt[C_HIGH] + cnt[C_NFREE]
    return (free_slots >= n and ol.shape[0] - cnt[C_NLOG] >= n
            and free_rows(cnt, rq, rqf, C_RQ_HEAD, C_RQ_TAIL) >= n + 16)


@nb.njit(cache=True)
def _next_row(events, row: int, n: int, flag: int) -> int:
    while row < n and (events[row].ev & flag) == 0:
        row += 1
    return row


@nb.njit(cache=True)
def run_until(S, events, until: int) -> int:
    cnt = S[0]
    rq, rqf, rs = S[9], S[10], S[11]
    while True:
        if not has_room(S):
            return RUN_NEED_SPACE
        n = cnt[C_NEV]
        finished = cnt[C_FINISHED] == 1
        lrow = _next_row(events, cnt[C_LROW], n, LOCAL_EVENT)
        cnt[C_LROW] = lrow
        xrow = _next_row(events, cnt[C_XROW], n, EXCH_EVENT)
        cnt[C_XROW] = xrow
        t_ld = events[lrow].local_ts if lrow < n else NEVER
        t_lo = head_ts(cnt, rs, C_RS_HEAD, C_RS_TAIL)
        t_xd = events[xrow].exch_ts if xrow < n else NEVER
        t_xo = head_ts(cnt, rq, C_RQ_HEAD, C_RQ_TAIL)
        # the earliest intent; ties: local data, local order, exchange data, exchange order
        kind = 0
        t = t_ld
        if t_lo < t:
            kind = 1
            t = t_lo
        if t_xd < t:
            kind = 2
            t = t_xd
        if t_xo < t:
            kind = 3
            t = t_xo
        # live: events not appended yet come at or after the last appended ones, on each clock
        if not finished and ((lrow >= n and t >= cnt[C_LAST_LOCAL_TS])
                             or (xrow >= n and t >= cnt[C_LAST_EXCH_TS])):
            if t > until and until < cnt[C_LAST_LOCAL_TS] and until < cnt[C_LAST_EXCH_TS]:
                cnt[C_NOW] = until
                return RUN_DONE
            return RUN_NEED_DATA
        if t > until:
            if until != NEVER:
                cnt[C_NOW] = until
            return RUN_DONE
        if t == NEVER:
            return RUN_END
        if kind == 0:
            e = events[lrow]
            local.process_event(S, e.ev, e.px, e.qty)
            cnt[C_LAST_FEED_LAT] = e.local_ts - e.exch_ts
            cnt[C_LROW] = lrow + 1
            cnt[C_LEVENTS] += 1
            cnt[C_NOW] = t
        elif kind == 1:
            local.process_response(S)
            cnt[C_NOW] = t
        elif kind == 2:
            e = events[xrow]
            exchange.process_event(S, e.ev, e.px, e.qty, t)
            cnt[C_XROW] = xrow + 1
            cnt[C_XEVENTS] += 1
            cnt[C_XNOW] = t
        else:
            r = pop(cnt, C_RQ_HEAD, C_RQ_TAIL)
            slot = rq[r, RQ_SLOT]
            kind_rq = rq[r, RQ_KIND]
            tick = rq[r, RQ_TICK]
            qty = rqf[r, 0]
            S[6][slot, OI_INFLIGHT] -= 1  # the request has arrived
            exchange.process_request(S, slot, kind_rq, tick, qty, t)
            cnt[C_XNOW] = t
