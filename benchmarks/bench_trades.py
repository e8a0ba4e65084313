"""Trade feed benchmark: trade readers and the event-stream builder, on real and day-scale data.

Figures (one JSON object; CPU seconds beside wall seconds, and the load average seen):
- binance_*: the real Binance capture (19,904 trades among 99,574 lines of depth diffs,
  bookTickers and trades): `read_trades` and `build_event_stream` over both files.
- bybit_events_*: every real Bybit format-2 capture (116,758 book messages) through
  `build_event_stream` (book only: these recordings have no trade lines).
- day_*: a simulated day (`--hours`, default 24) of Bybit wire pushes with the trade feed,
  written to a raw store file as the collector would (orderbook.50 + publicTrade), then
  `read_trades` over it (trades/s, lines/s) and the event builder streaming over it
  (book messages + trades per second, events per second), its chunks not kept (memory stays
  flat); the `l2_trades` Parquet bytes per trade.
Measures only; never asserts. Usage: trade-pipeline bench trades --json [--hours H]
"""

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class _Clock:
    def __enter__(self):
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _rates(prefix: str, clock: _Clock, **counts) -> dict:
    out = {f"{prefix}_wall_s": round(clock.wall, 3), f"{prefix}_cpu_s": round(clock.cpu, 3)}
    for name, n in counts.items():
        out[f"{prefix}_{name}"] = n
        out[f"{prefix}_{name}_per_cpu_s"] = round(n / max(clock.cpu, 1e-9))
        out[f"{prefix}_{name}_per_wall_s"] = round(n / max(clock.wall, 1e-9))
    return out


def run(settings=None, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench trades")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (day part)")
    args, _ = parser.parse_known_args(argv or [])

    from trade_pipeline.market.event_stream import EventStreamBuilder, build_event_stream
    from trade_pipeline.market.simulator import SimulatorConfig, simulate_to_store
    from trade_pipeline.market.trades import read_trades, write_trades
    from trade_pipeline.settings import Settings

    out: dict = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    binance = sorted((DATA / "binance").glob("*.gz"))
    bybit = sorted(p for p in (DATA / "bybit").glob("*.jsonl.gz") if "175705" not in p.name)
    # warm up: numba compile / cache load, imports
    build_event_stream(bybit[:1])
    if binance:
        read_trades(binance[:1])
        with _Clock() as c:
            res = read_trades(binance)
        out.update(_rates("binance_read_trades", c, trades=res.frame.height,
                          lines=res.report.lines))
        with _Clock() as c:
            events, rep = build_event_stream(binance)
        out.update(_rates("binance_events", c, items=rep.messages + rep.trades["trades"],
                          events=len(events)))
    if bybit:
        with _Clock() as c:
            events, rep = build_event_stream(bybit)
        out.update(_rates("bybit_events", c, messages=rep.messages, events=len(events)))

    with tempfile.TemporaryDirectory() as tmp:
        home = Settings.load(home=tmp).ensure_dirs()
        start = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)
        with _Clock() as c:
            sim = simulate_to_store(home, SimulatorConfig(start=start, duration_s=args.hours * 3600,
                                                          seed=11, trades=True))
        out["day_hours"] = args.hours
        out["day_simulate_wall_s"] = round(c.wall, 3)
        out["day_raw_bytes"] = sim["bytes"]
        files = [Path(f) for f in sim["files"]]
        with _Clock() as c:
            res = read_trades(files)
        out.update(_rates("day_read_trades", c, trades=res.frame.height, lines=res.report.lines))
        del res
        builder = EventStreamBuilder()
        n_events = 0
        with _Clock() as c:
            for chunk in builder.chunks(files):
                n_events += len(chunk)
        items = builder.report.messages + builder.report.trades["trades"]
        out.update(_rates("day_events", c, items=items, events=n_events))
        parquet = Path(tmp) / "t.parquet"
        with _Clock() as c:
            report = write_trades(files, parquet)
        out["day_write_trades_wall_s"] = round(c.wall, 3)
        out["day_write_trades_cpu_s"] = round(c.cpu, 3)
        out["l2_trades_bytes_per_trade"] = round(parquet.stat().st_size / report.counters.trades, 1)
    import resource

    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out["cpus"] = os.cpu_count()
    out["note"] = "CPU seconds of this process; the machine is shared: wall figures are noisy"
    return out


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:]), indent=2))
