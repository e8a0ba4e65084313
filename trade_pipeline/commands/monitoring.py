"""CLI subcommands for the monitoring area: `trade-pipeline monitor`."""

import argparse
import sys

from trade_pipeline.commands.argtypes import positive_seconds


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="terminal dashboard: freshness, gaps, feature quality, drift, model IC, paper PnL",
        description="Show, per symbol, data freshness and capture gaps (raw store and lake), "
        "feature null / infinity rates of the newest day, drift (PSI per feature between the "
        "champion's training window and the newest day), model performance (IC, rank IC and "
        "hit rate of stored predictions against realized returns, also per hour) and paper "
        "PnL. Every store is opened read-only. A piece that does not exist yet is named as "
        "absent (e.g. 'no champion yet'). Refreshes every --interval seconds until Ctrl-C; "
        "--once renders one frame; --json prints the same data as JSON to stdout.",
    )
    p.add_argument("--once", action="store_true", help="render once and exit")
    p.add_argument("--json", action="store_true",
                   help="print the data as JSON to stdout (implies --once)")
    p.add_argument("--interval", type=positive_seconds, default=10.0, metavar="S",
                   help="seconds between refreshes (default 10)")
    p.add_argument("--symbol", help="symbol to monitor (default: the settings' symbol, BTCUSDT)")
    p.add_argument("--exchange", help="exchange (default: the settings' exchange, bybit)")
    p.set_defaults(func=run_monitor)


def run_monitor(args: argparse.Namespace, settings) -> int:
    import time

    from rich.console import Console
    from rich.live import Live

    from trade_pipeline.monitoring.dashboard import render
    from trade_pipeline.monitoring.status import collect, to_json
    from trade_pipeline.settings import check_exchange, check_symbol

    changes = {}
    if args.symbol is not None:
        changes["symbol"] = check_symbol(args.symbol)
    if args.exchange is not None:
        changes["exchange"] = check_exchange(args.exchange)
    settings = settings.with_(**changes) if changes else settings

    if args.json:
        print(to_json(collect(settings)))
        return 0
    console = Console()
    if args.once:
        console.print(render(collect(settings)))
        return 0
    with Live(render(collect(settings)), console=console, screen=False,
              refresh_per_second=1) as live:
        while True:
            time.sleep(args.interval)
            live.update(render(collect(settings)))
    return 0  # pragma: no cover (Ctrl-C ends the loop; cli.main reports it)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: trade-pipeline monitor")
