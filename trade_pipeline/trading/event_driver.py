"""Strategy wake-ups on the event engine: the loop the event backtest and paper trading share.

Every `interval` of local time, from the stream's first event (hftbacktest's `elapse`
schedule: t0 + k * interval), the driver

1. runs the engine up to the wake-up time (every event and message up to then);
2. books the fills whose responses have arrived, through the accounting's rule
   (`accounting.settle_nb`, the compiled `settle` of the grid engine's `Account`), and marks
   the equity at the local mid;
3. checks the drawdown stop: once equity falls `drawdown_stop` below its peak, the strategy
   stops, every resting order is cancelled and the position is closed with market orders;
4. otherwise calls the strategy's step with the latest signal known by then (a signal
   counts from its `available` time: the receive time of the message that completed it);
5. records a sample (time, equity, position, mid, signal).

The driver stops where the engine must wait for data (live) or has nothing left (the last
wake-up is the last one with something still to come, as hftbacktest's loop ends). A run
fed in pieces goes through exactly the same wake-ups as the run fed at once.
"""

import math

import numba as nb
import numpy as np

from trade_pipeline.market.events import EXCH_EVENT, LOCAL_EVENT
from trade_pipeline.trading import event_taker, maker, market_maker
from trade_pipeline.trading.accounting import equity_of_nb, settle_nb
from trade_pipeline.trading.event import view
from trade_pipeline.trading.event.layout import (
    A_LPOS,
    C_FINISHED,
    C_NEV,
    C_NFILL,
    D_BEST_ASK,
    D_BEST_BID,
    FF_FEE,
    FF_PRICE,
    FF_QTY,
    FI_LOCAL_TS,
    FI_SIDE,
    INVALID_MAX,
    INVALID_MIN,
    NEVER,
    P_TICK,
    RUN_DONE,
    RUN_END,
    RUN_NEED_DATA,
    RUN_NEED_SPACE,
)
from trade_pipeline.trading.event.loop import room_for_orders, run_until

K_NOOP, K_TAKER, K_MAKER, K_MARKET_MAKER = 0, 1, 2, 3
STRATEGY_KINDS = {"none": K_NOOP, "taker": K_TAKER, "maker": K_MAKER, "market_maker": K_MARKET_MAKER}

# dv: driver counters (int64)
DV_NEXT, DV_INTERVAL, DV_SIG, DV_NSIG, DV_BOOKED, DV_NSAMPLE, DV_HALT, DV_STEPS, DV_FLAT_ID = range(9)
NDV = 12
HALT_NONE, HALT_DRAWDOWN, HALT_STOP = 0, 1, 2
# dvf: running accounts (float64)
F_POS, F_AVG, F_REAL, F_FEES, F_PEAK, F_EQ, F_INIT, F_STOP, F_SIGNAL = range(9)
NDVF = 12
# samples: smp_i[:, 0] = time; smp_f columns
SM_EQUITY, SM_POS, SM_MID, SM_SIGNAL = range(4)
NSM = 4


@nb.njit(cache=True)
def _book_fills(cnt, fi, ff, dv, dvf, upto: int) -> int:
    """Book fills delivered by `upto` into the running accounts; returns the first new one."""
    k0 = dv[DV_BOOKED]
    k = k0
    while k < cnt[C_NFILL] and fi[k, FI_LOCAL_TS] <= upto:
        qty = ff[k, FF_QTY]
        notional = ff[k, FF_PRICE] * qty
        pos, avg, realized, _close, _kind = settle_nb(dvf[F_POS], dvf[F_AVG], fi[k, FI_SIDE], qty, notional)
        dvf[F_POS] = pos
        dvf[F_AVG] = avg
        dvf[F_REAL] += realized
        dvf[F_FEES] += ff[k, FF_FEE]
        k += 1
    dv[DV_BOOKED] = k
    return k0


@nb.njit(cache=True)
def _local_mid(prm, lm) -> float:
    bb, ba = lm[D_BEST_BID], lm[D_BEST_ASK]
    if bb == INVALID_MIN or ba == INVALID_MAX or bb >= ba:
        return math.nan
    return (bb + ba) * prm[P_TICK] / 2.0


@nb.njit(cache=True)
def _flatten(S, dv) -> None:
    """Halted: cancel what rests; once nothing is working, close the position at market."""
    view.cancel_all(S)
    if view.any_order(S):
        return
    pos = view.position(S)
    qty = view.floor_lots(S, abs(pos))
    if qty > 0.0:
        dv[DV_FLAT_ID] -= 1
        view.market(S, dv[DV_FLAT_ID], -1 if pos > 0 else 1, qty)


@nb.njit(cache=True)
def halt_now(S, dv) -> None:
    """An outside stop (kill switch, stale data): no more strategy steps; cancel and flatten
    at the current local time."""
    dv[DV_HALT] = HALT_STOP
    _flatten(S, dv)


@nb.njit(cache=True)
def _first_time(S, events) -> int:
    """The earliest of the first local and the first exchange time (hftbacktest's start)."""
    n = S[0][C_NEV]
    t_local = NEVER
    t_exch = NEVER
    for i in range(n):
        e = events[i]
        if t_local == NEVER and e.ev & LOCAL_EVENT:
            t_local = e.local_ts
        if t_exch == NEVER and e.ev & EXCH_EVENT:
            t_exch = e.exch_ts
        if t_local != NEVER and t_exch != NEVER:
            break
    return min(t_local, t_exch)


@nb.njit(cache=True)
def drive(S, events, kind: int, par, si, sf, sig_ts, sig_val, dv, dvf, smp_i, smp_f) -> int:
    # arrays out of the state tuple once: per wake-up, only the engine and the strategy get it
    cnt, prm, lm, oi, rq, rqf, fi, ff, ol, acc = S[0], S[1], S[5], S[6], S[9], S[10], S[13], S[14], S[15], S[18]
    while True:
        if dv[DV_NEXT] == NEVER:
            if cnt[C_NEV] == 0:
                return RUN_END if cnt[C_FINISHED] == 1 else RUN_NEED_DATA
            dv[DV_NEXT] = _first_time(S, events) + dv[DV_INTERVAL]
        t = dv[DV_NEXT]
        code = run_until(S, events, t)
        if code != RUN_DONE:
            return code
        if not room_for_orders(cnt, oi, rq, rqf, ol, 16) or dv[DV_NSAMPLE] >= smp_i.shape[0]:
            return RUN_NEED_SPACE
        # the latest signal available by t
        j = dv[DV_SIG]
        while j < dv[DV_NSIG] and sig_ts[j] <= t:
            dvf[F_SIGNAL] = sig_val[j]
            j += 1
        dv[DV_SIG] = j
        k0 = _book_fills(cnt, fi, ff, dv, dvf, t)
        mid = _local_mid(prm, lm)
        if not math.isnan(mid):
            dvf[F_EQ] = equity_of_nb(dvf[F_INIT], dvf[F_REAL], dvf[F_FEES], 0.0, dvf[F_POS], dvf[F_AVG], mid)
            if dvf[F_EQ] > dvf[F_PEAK]:
                dvf[F_PEAK] = dvf[F_EQ]
            if (dvf[F_STOP] > 0.0 and dv[DV_HALT] == HALT_NONE
                    and dvf[F_EQ] <= dvf[F_PEAK] * (1.0 - dvf[F_STOP])):
                dv[DV_HALT] = HALT_DRAWDOWN
        if dv[DV_HALT] != HALT_NONE:
            _flatten(S, dv)
        elif kind == K_TAKER:
            event_taker.step(S, par, si, sf, t, dvf[F_SIGNAL], k0, dv[DV_BOOKED])
        elif kind == K_MAKER:
            maker.step(S, par, si, sf, t, dvf[F_SIGNAL], k0, dv[DV_BOOKED])
        elif kind == K_MARKET_MAKER:
            market_maker.step(S, par, si, sf, t, dvf[F_SIGNAL], k0, dv[DV_BOOKED])
        k = dv[DV_NSAMPLE]
        smp_i[k, 0] = t
        smp_f[k, SM_EQUITY] = dvf[F_EQ]
        smp_f[k, SM_POS] = round(acc[A_LPOS], 9)
        smp_f[k, SM_MID] = mid
        smp_f[k, SM_SIGNAL] = dvf[F_SIGNAL]
        dv[DV_NSAMPLE] = k + 1
        dv[DV_STEPS] += 1
        dv[DV_NEXT] = t + dv[DV_INTERVAL]


def driver_arrays(interval_ns: int, initial_capital: float, drawdown_stop: float | None,
                  samples: int = 4096):
    dv = np.zeros(NDV, dtype=np.int64)
    dv[DV_NEXT] = NEVER
    dv[DV_INTERVAL] = interval_ns
    dvf = np.zeros(NDVF, dtype=np.float64)
    dvf[F_INIT] = initial_capital
    dvf[F_PEAK] = initial_capital
    dvf[F_EQ] = initial_capital
    dvf[F_STOP] = drawdown_stop or 0.0
    dvf[F_SIGNAL] = np.nan
    return dv, dvf, np.zeros((samples, 1), dtype=np.int64), np.zeros((samples, NSM), dtype=np.float64)



