"""Sources benchmark: the simulator and the collector path (replay server -> collector -> raw).

Figures (one JSON object):
- sim_pushes_per_s: `simulate()` frames generated per wall second (numba core + encoding),
  excluding the first call's compile/cache load; sim_hour_s: a simulated hour written to a
  raw store (`simulate_to_store`, gzip included), i.e. the demo's source step.
- collect_msgs_per_s: pushes per second through the collector end to end (replay server at
  full speed on 127.0.0.1, parse, gap tracking, gzip members), both in this process.
Measures only; never asserts. Usage: trade-pipeline bench sources --json [--seconds N]
"""

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(settings=None, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench sources")
    parser.add_argument("--seconds", type=float, default=3600.0, help="simulated seconds")
    args, _ = parser.parse_known_args(argv or [])

    from trade_pipeline.market.collector import Collector, CollectorConfig
    from trade_pipeline.market.replay_server import ReplayServerThread
    from trade_pipeline.market.simulator import SimulatorConfig, simulate, simulate_to_store
    from trade_pipeline.settings import Settings
    from trade_pipeline.storage.raw_store import RawStoreWriter

    start = dt.datetime(2025, 7, 7, tzinfo=dt.UTC)
    list(simulate(SimulatorConfig(start=start, duration_s=1)))  # numba compile / cache load
    t0 = time.perf_counter()
    n = sum(1 for _ in simulate(SimulatorConfig(start=start, duration_s=args.seconds)))
    gen_s = time.perf_counter() - t0
    out: dict = {"sim_seconds": args.seconds, "sim_pushes": n,
                 "sim_pushes_per_s": round(n / gen_s)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(home=tmp).ensure_dirs()
        t0 = time.perf_counter()
        result = simulate_to_store(settings, SimulatorConfig(start=start, duration_s=args.seconds))
        out["sim_to_store_s"] = round(time.perf_counter() - t0, 3)
        out["raw_bytes_per_push"] = round(result["bytes"] / result["messages"], 1)
        files = result["files"]

        # collector end to end on the simulated hour
        with ReplayServerThread([Path(f) for f in files], speed=0) as srv:
            writer = RawStoreWriter(Path(tmp) / "collected", "bybit", "BTCUSDT")
            collector = Collector(CollectorConfig(url=srv.url, duration_s=600), writer)

            async def main() -> None:
                async def watch() -> None:
                    while collector.stats.messages < n:
                        await asyncio.sleep(0.05)
                    collector.stop()

                task = asyncio.create_task(watch())
                await collector.run()
                task.cancel()

            t0 = time.perf_counter()
            asyncio.run(main())
            took = time.perf_counter() - t0
            writer.close()
        out["collect_msgs"] = collector.stats.messages
        out["collect_msgs_per_s"] = round(collector.stats.messages / took)
    out["note"] = "shared 2-core machine: figures are noisy"
    return out


if __name__ == "__main__":
    print(json.dumps(run(None, sys.argv[1:])))
