"""CLI subcommands for the trading area: `backtest` and `paper`."""

import argparse
import json
import sys

from trade_pipeline.commands.argtypes import positive_float


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest",
        help="backtest a model or a signal file on the snapshot grid, or orders on the raw events",
        description="Grid mode: the backtest on the 100 ms snapshot grid: signals (from "
        "--predictions, or from --model run over the batch features) -> orders with the "
        "execution model of --config (fees, latency, book walking) -> positions, PnL and "
        "metrics; results go to the warehouse (backtest_results, trades, predictions) and to "
        "MLflow unless --no-store. Event mode (--events CAPTURE...): the event-level engine on "
        "the captures' book changes and public trades in order of receipt (maker orders fill on "
        "the trades), with queue position, "
        "order-entry and response latency, maker/taker fees ([event_execution] of --config); "
        "it runs the orders of --orders, or the strategy of [event_run] (maker and taker trade "
        "--model's signal); prints fills, markouts, fill ratio, time in queue and the PnL "
        "split, and logs them to MLflow unless --no-store.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", metavar="NAME@ALIAS",
                     help="registered model, e.g. btc_l2_5s@champion: its expected returns, traded "
                     "with the thresholds of its decision rule, on rows after its training range")
    src.add_argument("--predictions", metavar="P.parquet",
                     help="Parquet with columns timestamp and signal (-1, 0, +1: the target position sign)")
    p.add_argument("--snapshots", metavar="S.parquet",
                   help="l2_snapshots rows (default: the lake's partitions for --start..--end)")
    p.add_argument("--start", help="first day YYYY-MM-DD or ISO time (UTC)")
    p.add_argument("--end", help="last day YYYY-MM-DD (inclusive) or ISO time (exclusive)")
    p.add_argument("--config", metavar="exec.toml",
                   help="execution assumptions and strategy limits (see trade_pipeline/trading/execution.py)")
    p.add_argument("--json", action="store_true", help="print the metrics and the trade list as JSON")
    p.add_argument("--no-store", action="store_true", help="do not write the warehouse or MLflow")
    ev = p.add_argument_group("event mode")
    ev.add_argument("--events", nargs="+", metavar="CAPTURE",
                    help="captures (Bybit recorded or raw store files, ccxt or Binance files) to run "
                    "on the event engine, with the trades they carry")
    ev.add_argument("--orders", metavar="ORDERS.parquet",
                    help="scripted orders: timestamp, order_id, action (limit|market|cancel), side, "
                    "price, qty [, post_only]")
    ev.add_argument("--queue-model", choices=["risk_averse", "prob", "prob_power", "prob_log"],
                    help="queue position model (prob = prob_power); overrides [event_execution]")
    ev.add_argument("--format", default="auto", choices=["auto", "bybit", "ccxt", "binance"],
                    help="capture format (default: detected)")
    p.add_argument("--allow-in-sample", action="store_true",
                   help="run even on rows of the model's training range (refused by default); "
                   "the result is labelled in-sample")
    p.set_defaults(func=handle_backtest)

    q = sub.add_parser(
        "paper",
        help="paper-trade a model on a live (or replayed) Bybit stream",
        description="Live path: WebSocket message -> book -> grid row -> online features -> "
        "compiled model -> signal -> simulated order (the backtest's execution model) -> position "
        "and PnL. Writes predictions and trades to the warehouse, the latest features to Redis, "
        "and tick-to-signal p50/p99 to the warehouse and MLflow. Kill switch: the file "
        "<home>/KILL, the Redis key <prefix>:kill, or SIGUSR1.",
    )
    q.add_argument("--duration", type=positive_float, required=True, metavar="S",
                   help="seconds to run")
    q.add_argument("--url", help="WebSocket URL (default: Bybit's public v5 linear stream)")
    q.add_argument("--model", default=None, metavar="NAME@ALIAS",
                   help="model to trade (default: the settings' model, TRADE_PIPELINE_MODEL, "
                   "btc_l2_5s@champion unless set)")
    q.add_argument("--shadow", metavar="NAME@ALIAS",
                   help="a second model run in shadow on the same stream (A/B), e.g. btc_l2_5s@challenger")
    q.add_argument("--config", metavar="exec.toml", help="execution assumptions and strategy limits")
    q.add_argument("--stale-after", type=positive_float, default=5.0, metavar="S",
                   help="no book update for this many seconds flattens and stops (default 5)")
    q.add_argument("--redis-url", help="online store (default: the settings' Redis URL)")
    q.add_argument("--redis-prefix", default="trade_pipeline", help="online store key prefix")
    q.add_argument("--ttl", type=positive_float, default=30.0, help="online store TTL in seconds")
    q.add_argument("--no-redis", action="store_true", help="do not write the online store")
    q.add_argument("--execution", choices=["grid", "events"], default="grid",
                   help="grid: market orders on the 100 ms grid (the grid backtest's engine); "
                   "events: the event engine and the strategy of --event-config (limit orders, "
                   "queue position, latencies)")
    q.add_argument("--event-config", metavar="run.toml",
                   help="[event_execution], [event_run] and strategy sections for --execution events")
    q.add_argument("--json", action="store_true", help="print the run summary as JSON")
    q.add_argument("--allow-in-sample", action="store_true",
                   help="trade even rows of the model's training range (a replayed capture it "
                   "was trained on); the run is labelled in-sample")
    q.set_defaults(func=handle_paper)


def _warehouse_errors() -> tuple[type[Exception], ...]:
    from trade_pipeline.lake.migrations import MigrationError
    from trade_pipeline.lake.warehouse import WarehouseLockTimeout
    from trade_pipeline.trading.store import WarehouseNotReady

    return (MigrationError, WarehouseLockTimeout, WarehouseNotReady)


def handle_event_backtest(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.trading.event_service import event_backtest_command

    if args.predictions or args.snapshots or args.start or args.end:
        print("trade-pipeline: error: --events runs on the captures: --predictions, --snapshots, "
              "--start and --end belong to the grid backtest", file=sys.stderr)
        return 2
    try:
        out = event_backtest_command(
            settings, captures=args.events, fmt=args.format, orders_path=args.orders,
            config_path=args.config, queue_model=args.queue_model, model_ref=args.model,
            store=not args.no_store)
    except FileNotFoundError as exc:  # a capture path that is not there: one line, no traceback
        print(f"trade-pipeline: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, default=str, allow_nan=False))
    else:
        rep, src = out["report"], out["input"]
        print(f"  input: {src['events']} events ({src['trade_events']} trades) from "
              f"{src['messages']} book messages")
        print(f"  mode {out['mode']}: {rep['fills']} fills ({rep['maker_fills']} maker), "
              f"{rep['orders']} orders, {len(out['refused'])} refused")
        for key in ("fill_ratio_qty", "fill_ratio_orders", "time_in_queue_to_fill_s", "markout_bp", "pnl",
                    "pnl_uncertainty"):
            print(f"  {key:24s} {rep[key]}")
    return 0


def handle_backtest(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.trading import inputs
    from trade_pipeline.trading.engine import TradingConfig

    # a bad time is refused first, with its own message, whatever else is missing
    inputs.parse_bound(args.start, end=False)
    inputs.parse_bound(args.end, end=True)
    if args.events:
        return handle_event_backtest(args, settings)
    if args.orders or args.queue_model:
        print("trade-pipeline: error: --orders and --queue-model need --events CAPTURE...",
              file=sys.stderr)
        return 2
    if not (args.model or args.predictions):
        print("trade-pipeline: error: give --model or --predictions (grid), or --events (event mode)",
              file=sys.stderr)
        return 2
    from trade_pipeline.trading.service import backtest_command

    config = TradingConfig.load(args.config)
    try:
        out = backtest_command(
            settings, config=config, model_ref=args.model, predictions_path=args.predictions,
            snapshots_path=args.snapshots, start=args.start, end=args.end, store=not args.no_store,
            allow_in_sample=args.allow_in_sample,
        )
    except (ValueError, *_warehouse_errors()) as exc:
        print(f"trade-pipeline: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, default=str, allow_nan=False))
    else:
        for key, value in out["metrics"].items():
            print(f"  {key:24s} {value}")
        print(f"  {'trades':24s} {len(out['trades'])}   run_id {out['run_id']}")
    return 0


def handle_paper(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.storage.services import check_mlflow, check_redis
    from trade_pipeline.trading.engine import TradingConfig
    from trade_pipeline.trading.event_config import EventBacktestConfig
    from trade_pipeline.trading.paper import paper_command
    from trade_pipeline.trading.paper_config import PaperConfig

    # before any work: a dead online store is one line naming its URL, not a traceback
    redis_url = None if args.no_redis else (args.redis_url or settings.redis_url)
    if redis_url:
        check_redis(redis_url, settings.service_timeout_s)
    check_mlflow(settings.mlflow_tracking_uri, settings.service_timeout_s)  # the model's home
    paper = PaperConfig(
        url=args.url or settings.bybit_ws_url, duration_s=args.duration, model_ref=args.model,
        shadow_ref=args.shadow, execution=args.execution, stale_after_s=args.stale_after,
        redis_url=redis_url,
        redis_prefix=args.redis_prefix, ttl_s=args.ttl, install_signal=True,
        allow_in_sample=args.allow_in_sample)
    events = EventBacktestConfig.load(args.event_config) if args.execution == "events" else None
    try:
        out = paper_command(settings, paper, trading=TradingConfig.load(args.config), events=events)
    except _warehouse_errors() as exc:
        print(f"trade-pipeline: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for key, value in out.items():
            if key != "trades":
                print(f"  {key:28s} {value}")
    if out.get("error") is not None:
        # the stream was given up (connect_failed / disconnected): the summary above, the
        # reason in one line
        print(f"trade-pipeline: error: {out['error']}", file=sys.stderr)
        return 1
    return 0
