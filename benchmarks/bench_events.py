"""The event backtest against hftbacktest 2.4.4 (the reference engine), on the same data.

`trade-pipeline bench events --json [--days 1] [--maker-data binance|bybit] [--quick]`

1. Engine speed, risk-averse queue, no strategy: the 21-minute Bybit capture
   (`..._20250707_051509`) as an event stream, tiled (time-shifted copies) to `--days` days
   (about 13.4 million events a day), run to the end (a) by the engine alone and (b) by
   the driver with the do-nothing strategy waking every 100 ms; hftbacktest: the same
   array, `elapse(100 ms)` until the end. Target: >= 1,000,000 events/s on one core.
2. A maker strategy, fills and PnL compared: the GLFT market maker of hftbacktest's tutorial
   (`trading/market_maker.py` here; ported below to hftbacktest's API line for line) on the
   Binance spot capture with its trades (hftbacktest's own example data; book diffs and
   `@trade` lines through the event-stream builder), same queue model, latencies, fees,
   tick/lot, one-lot orders. Compared: the fills (order id = price tick, exchange time, price,
   qty, maker), the final position, fees and PnL. Then both on the capture tiled to a day for
   the time ratio (`--maker-hours`, default 6). Target: within 2x hftbacktest's time, or
   faster.

Each timing reports wall and CPU seconds (best of `--repeat`), plus the load average seen
(a shared 2-core machine: wall times are noisy). The first call of each engine compiles its
kernels (numba caches ours; hftbacktest's Python glue is jitted per process): compile runs
are excluded by a warm-up on a small slice.

Both engines run the same array: the captures through `market/event_stream.py` (book changes
and the capture's trades in order of receipt) and the engine's clock order, as the event
backtest runs them (`engine_stream`).
"""

import argparse
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BYBIT_FILE = "l2_data_BTC_USDT_USDT_20250707_051509.jsonl.gz"
MS = 1_000_000
INVALID_MIN = np.iinfo(np.int64).min
INVALID_MAX = np.iinfo(np.int64).max


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _timed(fn, repeat: int):
    """(result of the last call, best wall s, best CPU s)."""
    best_wall = best_cpu = float("inf")
    out = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return out, best_wall, best_cpu


def tile(events: np.ndarray, copies: int) -> np.ndarray:
    """`copies` time-shifted copies back to back (1 s apart), on both clocks."""
    if copies <= 1:
        return events
    span = int(max(events["exch_ts"][-1], events["local_ts"][-1]) - min(events["exch_ts"][0], events["local_ts"][0])) + 1_000 * MS
    out = np.empty(len(events) * copies, dtype=events.dtype)
    for k in range(copies):
        part = out[k * len(events):(k + 1) * len(events)]
        part[:] = events
        part["exch_ts"] += k * span
        part["local_ts"] += k * span
    return out


def engine_stream(paths) -> tuple[np.ndarray, dict]:
    """Captures -> the stream the event backtest runs (`trading.event_service.load_events`:
    the market layer's builder, book changes and trades, then the engine's clock order) and
    its report."""
    from trade_pipeline.trading.event_service import load_events

    data = load_events([str(p) for p in paths])
    return data.events, data.report


# ---- hftbacktest side --------------------------------------------------------------------------
def _hbt(events, cfg, queue: str):
    from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest

    ex = cfg.execution
    asset = (BacktestAsset().data(events).linear_asset(1.0)
             .constant_order_latency(ex.entry_ns, ex.response_ns)
             .partial_fill_exchange()
             .trading_value_fee_model(ex.maker_fee, ex.taker_fee)
             .tick_size(ex.tick_size).lot_size(ex.lot_size).last_trades_capacity(100_000))
    if queue == "prob_power":
        asset = asset.power_prob_queue_model(ex.queue_power)
    elif queue == "prob_log":
        asset = asset.log_prob_queue_model()
    else:
        asset = asset.risk_adverse_queue_model()
    return HashMapMarketDepthBacktest([asset])


@functools.cache
def _hbt_functions():
    """The hftbacktest-side loops, compiled once per process (timings exclude compiling)."""
    from hftbacktest import BUY, BUY_EVENT, FILLED, GTX, LIMIT, SELL
    from numba import njit

    from trade_pipeline.trading.market_maker import (
        compute_coeff,
        linear_regression,
        measure_trading_intensity,
    )

    @njit
    def idle(hbt, step):
        n = 0
        while hbt.elapse(step) == 0:
            n += 1
        return n

    @njit
    def glft(hbt, step, par, fills, window, step_s):
        """hftbacktest's GLFT tutorial, as `trading/market_maker.py` runs it (same parameters,
        same window arithmetic); fills recorded as they become visible (status FILLED)."""
        tick_size = hbt.depth(0).tick_size
        lot = hbt.depth(0).lot_size
        arrival_depth = np.full(window, np.nan, np.float64)
        mid_price_chg = np.full(window, np.nan, np.float64)
        tmp = np.zeros(500, np.float64)
        gamma, delta, adj1, adj2, order_qty, max_position = par[0], par[1], par[2], par[3], par[4], par[5]
        refit, fit_ticks = int(par[7]), int(par[8])
        A = np.nan
        k = np.nan
        volatility = np.nan
        mid_price_tick = np.nan
        t = 0
        nf = 0
        code = 0
        while True:
            code = hbt.elapse(step)
            if code != 0:
                break
            orders = hbt.orders(0)
            values = orders.values()
            while values.has_next():
                o = values.get()
                if o.status == FILLED and nf < fills.shape[0]:
                    fills[nf, 0] = o.order_id
                    fills[nf, 1] = o.exch_timestamp
                    fills[nf, 2] = o.exec_price_tick
                    fills[nf, 3] = round(o.exec_qty / lot)  # in lots
                    fills[nf, 4] = 1 if o.arr[0].maker else 0
                    fills[nf, 5] = 1 if o.side == BUY else -1
                    nf += 1
            j = t % window
            if not np.isnan(mid_price_tick):
                depth = -np.inf
                for last_trade in hbt.last_trades(0):
                    trade_price_tick = last_trade.px / tick_size
                    if last_trade.ev & BUY_EVENT == BUY_EVENT:
                        depth = max(trade_price_tick - mid_price_tick, depth)
                    else:
                        depth = max(mid_price_tick - trade_price_tick, depth)
                arrival_depth[j] = depth
            else:
                arrival_depth[j] = np.nan
            hbt.clear_last_trades(0)
            hbt.clear_inactive_orders(0)
            d = hbt.depth(0)
            position = hbt.position(0)
            orders = hbt.orders(0)
            best_bid_tick = d.best_bid_tick
            best_ask_tick = d.best_ask_tick
            if best_bid_tick == INVALID_MIN or best_ask_tick == INVALID_MAX or best_bid_tick >= best_ask_tick:
                # no valid book yet (as market_maker.py: the tutorial would take a mid of the
                # INVALID sentinels here)
                mid_price_tick = np.nan
                mid_price_chg[j] = np.nan
                t += 1
                continue
            prev_mid_price_tick = mid_price_tick
            mid_price_tick = (best_bid_tick + best_ask_tick) / 2.0
            mid_price_chg[j] = mid_price_tick - prev_mid_price_tick
            if t % refit == 0 and t >= window - 1:
                tmp[:] = 0
                lam = measure_trading_intensity(arrival_depth, tmp)
                if len(lam) > 2:
                    n = min(len(lam), fit_ticks)
                    lam = lam[:n] / (window * step_s)
                    x = np.arange(n) + 0.5
                    y = np.log(lam)
                    k_, logA = linear_regression(x, y)
                    A = np.exp(logA)
                    k = -k_
                volatility = np.nanstd(mid_price_chg) * np.sqrt(1.0 / step_s)
            t += 1
            c1, c2 = compute_coeff(gamma, gamma, delta, A, k)
            half_spread_tick = (c1 + delta / 2 * c2 * volatility) * adj1
            skew = c2 * volatility * adj2
            q = position / order_qty
            reservation_price_tick = mid_price_tick - skew * q
            bid_price_tick = min(np.round(reservation_price_tick - half_spread_tick), best_bid_tick)
            ask_price_tick = max(np.round(reservation_price_tick + half_spread_tick), best_ask_tick)
            order_values = orders.values()
            while order_values.has_next():
                order = order_values.get()
                stale = ((order.side == BUY and order.price_tick != bid_price_tick)
                         or (order.side == SELL and order.price_tick != ask_price_tick))
                if order.cancellable and stale:
                    hbt.cancel(0, order.order_id, False)
            if position < max_position and np.isfinite(bid_price_tick):
                oid = int(bid_price_tick)
                if oid not in orders:
                    hbt.submit_buy_order(0, oid, oid * tick_size, order_qty, GTX, LIMIT, False)
            if position > -max_position and np.isfinite(ask_price_tick):
                oid = int(ask_price_tick)
                if oid not in orders:
                    hbt.submit_sell_order(0, oid, oid * tick_size, order_qty, GTX, LIMIT, False)
        # fills whose responses came after the last step
        values = hbt.orders(0).values()
        while values.has_next():
            o = values.get()
            if o.status == FILLED and nf < fills.shape[0]:
                fills[nf, 0] = o.order_id
                fills[nf, 1] = o.exch_timestamp
                fills[nf, 2] = o.exec_price_tick
                fills[nf, 3] = round(o.exec_qty / lot)
                fills[nf, 4] = 1 if o.arr[0].maker else 0
                fills[nf, 5] = 1 if o.side == BUY else -1
                nf += 1
        return code, nf

    return idle, glft


def run_hbt_glft(events, cfg, queue):
    _, glft = _hbt_functions()
    mm = cfg.market_maker
    hbt = _hbt(events, cfg, queue)
    fills = np.zeros((1_000_000, 6), dtype=np.int64)
    code, nf = glft(hbt, cfg.run.interval_ns, mm.params(cfg.run.interval_ns / 1e9), fills, mm.window,
                    cfg.run.interval_ns / 1e9)
    sv = hbt.state_values(0)
    out = {"code": int(code), "fills": fills[:nf].copy(), "position": float(sv.position),
           "balance": float(sv.balance), "fee": float(sv.fee), "num_trades": int(sv.num_trades)}
    hbt.close()
    return out


# ---- our side -----------------------------------------------------------------------------------
def run_ours(events, cfg):
    from trade_pipeline.trading.event_backtest import EventRun

    run = EventRun(cfg, events, prepared=True)
    run.finish()
    return run.result()


def _compare(ours, ref, tick: float, lot: float) -> dict:
    """Fills as (order id, exchange time ns, price tick, qty in lots, maker), sorted."""
    f = ours.fills
    mine = sorted(zip(f["order_id"].to_list(), f["fill_at"].dt.epoch("ns").to_list(),
                      (f["price"] / tick).round().cast(int).to_list(),
                      (f["qty"] / lot).round().cast(int).to_list(),
                      (f["liquidity"] == "maker").to_list(), strict=True))
    theirs = sorted((int(r[0]), int(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in ref["fills"])
    same = [a for a, b in zip(mine, theirs, strict=False) if a == b]
    first_diff = next(((a, b) for a, b in zip(mine, theirs, strict=False) if a != b), None)
    pos = float(ours.account.position)
    return {
        "fills_ours": len(mine), "fills_hftbacktest": len(theirs),
        "fills_identical_prefix": len(same),
        "fills_identical": mine == theirs if len(mine) == len(theirs) else False,
        "first_difference": None if first_diff is None else {"ours": list(first_diff[0]), "hftbacktest": list(first_diff[1])},
        "position_ours": pos, "position_hftbacktest": ref["position"],
        "fees_ours": ours.account.fees, "fees_hftbacktest": ref["fee"],
        "cash_ours": float(-(f["side"].cast(float) * f["price"] * f["qty"]).sum()),
        "cash_hftbacktest": ref["balance"],
    }


def _maker_config(tick, lot, queue, window):
    from trade_pipeline.market.event_execution_config import EventExecutionConfig
    from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig
    from trade_pipeline.trading.market_maker import MarketMakerConfig

    return EventBacktestConfig(
        execution=EventExecutionConfig(tick_size=tick, lot_size=lot, maker_fee=-0.00005, taker_fee=0.0007,
                                       entry_latency_ms=10.0, response_latency_ms=10.0, queue_model=queue),
        run=EventRunConfig(strategy="market_maker", interval_ms=100.0, drawdown_stop=None),
        market_maker=MarketMakerConfig(order_qty=lot, max_position=20 * lot, window=window,
                                       refit_every=50, fit_ticks=70, arrival="trades", adj1=0.02))


def run(settings, argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="bench events")
    parser.add_argument("--days", type=float, default=1.0, help="tiled stream length for the speed runs")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--queue", default="risk_averse", choices=["risk_averse", "prob_power", "prob_log"])
    parser.add_argument("--maker-hours", type=float, default=6.0,
                        help="tiled length of the maker comparison's long run (memory: ~64 bytes "
                        "an event per engine; the Binance capture is ~29,000 events a minute)")
    parser.add_argument("--quick", action="store_true", help="skip the day-long runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from trade_pipeline.market.event_execution_config import EventExecutionConfig
    from trade_pipeline.trading.event import layout as L
    from trade_pipeline.trading.event.engine import EventEngine, prepare_events

    if not (DATA / "bybit" / BYBIT_FILE).exists():
        raise SystemExit(f"real captures not found under {DATA}")
    out: dict = {"load_average_start": _load(), "hftbacktest_version": _hbt_version()}

    # ---- 1. speed, no strategy -------------------------------------------------------------
    base, _ = engine_stream([DATA / "bybit" / BYBIT_FILE])
    exe = EventExecutionConfig(feed_latency_ms=5.0)
    base, _ = prepare_events(base, exe)
    span_s = (base["exch_ts"][-1] - base["exch_ts"][0]) / 1e9
    copies = 1 if args.quick else max(1, round(args.days * 86400 / span_s))
    day = tile(base, copies)
    idle, _ = _hbt_functions()
    EventEngine(exe, base[:5000], prepared=True).run_until(L.NEVER)  # warm-up (compile / cache load)
    h = _hbt(base[:5000], _maker_config(0.1, 0.001, "risk_averse", 600), "risk_averse")
    idle(h, 100 * MS)
    h.close()

    def engine_only():
        e = EventEngine(exe, day, prepared=True)
        e.run_until(L.NEVER)
        return e.counts()["exchange_events"]

    def driver_none():
        from trade_pipeline.trading.event_config import EventBacktestConfig, EventRunConfig

        return run_ours(day, EventBacktestConfig(execution=exe, run=EventRunConfig(strategy="none"))).counts["wakeups"]

    def hbt_idle():
        hb = _hbt(day, _maker_config(0.1, 0.001, "risk_averse", 600), "risk_averse")
        n = idle(hb, 100 * MS)
        hb.close()
        return n

    speed = {"events": len(day), "copies_of_capture": copies, "stream_hours": round(copies * span_s / 3600, 2)}
    for name, fn in (("ours_engine_only", engine_only), ("ours_driver_noop_100ms", driver_none),
                     ("hftbacktest_elapse_100ms", hbt_idle)):
        _r, wall, cpu = _timed(fn, args.repeat)
        speed[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                       "events_per_s_wall": round(len(day) / wall), "events_per_s_cpu": round(len(day) / cpu)}
    out["speed_no_strategy"] = speed
    day = None  # free it before the maker runs

    # ---- 2. GLFT maker on Binance with trades ---------------------------------------------------
    paths = sorted((DATA / "binance").glob("*.gz"))
    stream, report = engine_stream(paths)
    cfg = _maker_config(0.01, 0.00001, args.queue, window=600)  # 1 min window on 11 minutes of data
    events, info = prepare_events(stream, cfg.execution)
    out["maker_data"] = {"files": [p.name for p in paths],
                         **{k: report[k] for k in ("messages", "trades", "events", "exch_ts_raised")},
                         "local_clock_shift_ns": info["local_shift_ns"]}
    run_ours(events[:20000], cfg)  # warm-up
    run_hbt_glft(events[:20000], cfg, args.queue)
    ours, w_o, c_o = _timed(lambda: run_ours(events, cfg), args.repeat)
    ref, w_h, c_h = _timed(lambda: run_hbt_glft(events, cfg, args.queue), args.repeat)
    cmp = _compare(ours, ref, 0.01, 0.00001)
    out["maker_capture"] = {
        "events": len(events), "queue_model": args.queue, "hftbacktest_exit_code": ref["code"],
        "ours": {"wall_s": round(w_o, 3), "cpu_s": round(c_o, 3)},
        "hftbacktest": {"wall_s": round(w_h, 3), "cpu_s": round(c_h, 3)},
        "time_ratio_ours_over_hftbacktest_cpu": round(c_o / c_h, 3), **cmp}
    if not args.quick:
        copies = max(1, round(args.maker_hours * 3600 / ((events["exch_ts"][-1] - events["exch_ts"][0]) / 1e9)))
        big = tile(events, copies)
        cfg_day = _maker_config(0.01, 0.00001, args.queue, window=6000)
        ours_d, w_o, c_o = _timed(lambda: run_ours(big, cfg_day), 1)
        ref_d, w_h, c_h = _timed(lambda: run_hbt_glft(big, cfg_day, args.queue), 1)
        out["maker_long"] = {
            "events": len(big), "copies_of_capture": copies, "hftbacktest_exit_code": ref_d["code"],
            "ours": {"wall_s": round(w_o, 3), "cpu_s": round(c_o, 3)},
            "hftbacktest": {"wall_s": round(w_h, 3), "cpu_s": round(c_h, 3)},
            "time_ratio_ours_over_hftbacktest_cpu": round(c_o / c_h, 3),
            **_compare(ours_d, ref_d, 0.01, 0.00001)}
        out["maker_long"]["stream_hours"] = round(copies * (events["exch_ts"][-1] - events["exch_ts"][0]) / 3.6e12, 2)
    out["load_average_end"] = _load()
    return out


def _hbt_version() -> str:
    try:
        import hftbacktest

        return hftbacktest.__version__
    except ImportError:
        return "not installed (pip install hftbacktest==2.4.4, or the [bench] extra)"


if __name__ == "__main__":
    import json

    sys.path.insert(0, str(ROOT))
    print(json.dumps(run(None, sys.argv[1:]), indent=2, default=str))
