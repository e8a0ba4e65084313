"""CLI subcommands for the ingest area: collect, replay-server, simulate, import-captures
(sources -> raw capture store), snapshots and trades (raw captures -> the canonical tables)
and events (raw captures -> the event stream of the event-level backtest)."""

import argparse
import json

from trade_pipeline.commands.argtypes import non_negative_float, port, positive_float


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands."""
    _register_collect(sub)
    _register_replay_server(sub)
    _register_simulate(sub)
    _register_import_captures(sub)
    _register_snapshots(sub)
    _register_trades(sub)
    _register_events(sub)


# ---- collect ----------------------------------------------------------------------------------

def _register_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "collect",
        help="record Bybit's public order-book and trade streams into the raw capture store",
        description="Subscribe to orderbook.50.<SYMBOL> and publicTrade.<SYMBOL> on Bybit's "
        "public v5 WebSocket (or any server speaking its protocol, e.g. `replay-server`) and "
        "append every push, in order of receipt, with its local receive time to "
        "<home>/raw/exchange=bybit/symbol=<SYMBOL>/date=<day>/. Flushes at least once a "
        "second; after a sequence gap resubscribes the book (a fresh snapshot); reconnects "
        "with exponential backoff (jitter, 30 s cap); SIGINT/SIGTERM stop cleanly. Prints a "
        "JSON summary to stdout. Exit 1 when nothing was received, 2 when the store cannot be "
        "written (e.g. disk full: what was flushed stays intact).",
    )
    p.add_argument("--duration", type=positive_float, required=True, metavar="SECONDS",
                   help="how long to collect")
    p.add_argument("--symbol", default=None, help="exchange symbol (default from settings: BTCUSDT)")
    p.add_argument("--url", default=None,
                   help="WebSocket URL (default from settings: wss://stream.bybit.com/v5/public/linear)")
    p.add_argument("--ping-interval", type=positive_float, default=20.0, metavar="SECONDS",
                   help="application ping period (default 20)")
    p.add_argument("--flush-interval", type=positive_float, default=1.0, metavar="SECONDS",
                   help="max time a received push stays in memory (default 1)")
    p.add_argument("--no-trades", action="store_true",
                   help="record the order book only (no publicTrade subscription)")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.set_defaults(func=_collect)


def _collect(args, settings) -> int:
    import asyncio
    import signal
    import sys
    import time

    from trade_pipeline.market.collector import (
        CaptureWriteError,
        Collector,
        CollectorConfig,
        SubscribeError,
        summary,
    )
    from trade_pipeline.settings import check_symbol
    from trade_pipeline.storage.raw_store import RawStoreWriter

    symbol = check_symbol(args.symbol or settings.symbol)
    config = CollectorConfig(
        url=args.url or settings.bybit_ws_url,
        symbol=symbol,
        duration_s=args.duration,
        ping_interval_s=args.ping_interval,
        flush_interval_s=args.flush_interval,
        trades=not args.no_trades,
    )
    settings.ensure_dirs()
    writer = RawStoreWriter(settings.raw_dir, settings.exchange, symbol,
                            flush_interval=config.flush_interval_s)

    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(stderr=True)
    show = not args.no_progress
    live = Live(Text("connecting..."), console=console, refresh_per_second=4, transient=False) if show else None

    last = [time.monotonic(), 0]  # for the current rate: (time, messages) at the last update

    def on_progress(stats) -> None:
        if live is None:
            return
        now = time.monotonic()
        rate = (stats.messages - last[1]) / max(now - last[0], 1e-6)
        last[:] = [now, stats.messages]
        live.update(Text(
            f"collect {symbol}: {stats.messages} msgs ({stats.trade_messages} trades), "
            f"{rate:.1f} msg/s, gaps {stats.gaps}, resyncs {stats.resyncs}, "
            f"reconnects {stats.reconnects}, {writer.stats.bytes_written / 1e6:.2f} MB"
        ))

    def say(message: str) -> None:
        print(f"trade-pipeline collect: {message}", file=sys.stderr, flush=True)

    async def main() -> int:
        collector = Collector(config, writer, on_progress=on_progress)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, collector.stop)
        code = 0
        try:
            await collector.run()
        except SubscribeError as exc:
            say(f"error: {exc}")
            code = 2
        except CaptureWriteError as exc:
            say(f"error: {exc}")
            code = 2
        finally:
            try:
                writer.close()
            except OSError as exc:  # a last flush that met the same full disk
                collector.stats.write_error = collector.stats.write_error or str(exc)
                code = 2
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        stats = collector.stats
        collector._sync()
        print(json.dumps(summary(stats, writer)), flush=True)
        hole = stats.previous_capture
        if hole is not None:
            cut = ", which ends in a cut member" if hole["ended_in_a_cut_member"] else ""
            say(f"hole of {hole['hole_s']} s since the previous capture "
                f"{hole['file']}{cut} (its last push was received at "
                f"{hole['last_receive_time']})")
        if code == 0 and stats.messages == 0:
            reasons = ", ".join(f"{k} x{v}" for k, v in stats.disconnect_reasons.items())
            say(f"error: no message received from {config.url} in {config.duration_s:g} s "
                f"({collector.stream.stats.attempts} connection attempts; "
                f"{reasons or 'no error'}); nothing recorded")
            code = 1
        return code

    if live is not None:
        with live:
            return asyncio.run(main())
    return asyncio.run(main())


# ---- replay-server ----------------------------------------------------------------------------

def _register_replay_server(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay-server",
        help="serve recorded captures over Bybit's WebSocket protocol (loopback)",
        description="Serve recorded Bybit captures (format 2 jsonl[.gz], or raw store files) as a "
        "Bybit v5 public WebSocket: subscribe ack, ping/pong, orderbook pushes paced by their "
        "recorded time / --speed. A reconnecting client gets a snapshot of the current book. "
        "Fault injection for tests: --disconnect-after, --drop-at-u, --drop-every.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="captures, replayed in this order")
    p.add_argument("--port", type=port, required=True, help="TCP port (0: pick a free one)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--speed", type=non_negative_float, default=1.0,
                   help="replay speed factor (1 = real time; 0 or inf = as fast as possible)")
    p.add_argument("--disconnect-after", type=int, action="append", default=[], metavar="N",
                   help="abort the connection after the N-th push sent (repeatable)")
    p.add_argument("--drop-at-u", type=int, action="append", default=[], metavar="U",
                   help="never send the push with update id U (repeatable)")
    p.add_argument("--drop-every", type=int, default=0, metavar="K",
                   help="drop every K-th delta (0: never)")
    p.set_defaults(func=_replay_server)


def _replay_server(args, settings) -> int:
    import asyncio
    import signal
    from pathlib import Path

    from trade_pipeline.market.replay_server import Faults, ReplayServer, ReplaySourceError
    from trade_pipeline.settings import SettingsError
    from trade_pipeline.storage.input_files import check_input_file

    for name in args.files:  # missing, a directory, unreadable, empty: one line, exit 2
        check_input_file(name, "capture file")
    if args.drop_every < 0 or any(n <= 0 for n in args.disconnect_after):
        raise SettingsError("--drop-every must be >= 0 and --disconnect-after > 0")
    faults = Faults(args.disconnect_after, set(args.drop_at_u), args.drop_every)

    async def main() -> int:
        try:
            server = ReplayServer([Path(f) for f in args.files], args.host, args.port,
                                  args.speed, faults)
        except ReplaySourceError as exc:
            raise SettingsError(str(exc)) from None
        await server.start()
        print(json.dumps({"url": server.url, "topic": server.topic}), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.close()
        report = {**server.stats.__dict__, "truncated_files": server.read_stats.truncated_files,
                  "bad_lines": server.read_stats.bad_lines}
        print(json.dumps(report), flush=True)
        return 0

    return asyncio.run(main())


# ---- simulate ---------------------------------------------------------------------------------

def _register_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a synthetic (seeded, deterministic) BTCUSDT stream into the raw capture store",
        description="Simulate a queue-reactive limit/cancel/market order flow on a 0.1 tick grid "
        "and write Bybit v5 orderbook.50 pushes (snapshot + deltas, ~20 ms apart) and the "
        "publicTrade pushes of its market orders into <home>/raw as if collected live. Prints "
        "a JSON summary.",
    )
    p.add_argument("--start", default=None,
                   help="UTC start, ISO 8601 (default: today 00:00 UTC), e.g. 2025-07-07T00:00:00")
    p.add_argument("--duration", type=positive_float, default=3600.0, metavar="SECONDS",
                   help="simulated seconds (default 3600)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument("--symbol", default=None, help="symbol (default from settings)")
    p.add_argument("--replace", action="store_true",
                   help="replace this seed's earlier simulated files in the simulated days "
                   "(other captures there are never touched: the run refuses to mix with them)")
    p.add_argument("--no-trades", action="store_true",
                   help="order book only: no publicTrade pushes (by default the stream carries "
                   "the trades of its market orders, as the collector records them)")
    p.set_defaults(func=_simulate)


def _parse_start(text: str | None):
    import datetime as dt

    from trade_pipeline.settings import SettingsError

    if text is None:
        today = dt.datetime.now(dt.UTC).date()
        return dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)
    try:
        start = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"invalid --start {text!r}: expected ISO 8601, e.g. 2025-07-07T00:00:00") from None
    return start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)


def _simulate(args, settings) -> int:
    from trade_pipeline.market.simulator import SimulatorConfig, simulate_to_store
    from trade_pipeline.settings import SettingsError, check_symbol

    symbol = check_symbol(args.symbol or settings.symbol)
    config = SimulatorConfig(start=_parse_start(args.start), duration_s=args.duration,
                             seed=args.seed, symbol=symbol, trades=not args.no_trades)
    settings.ensure_dirs()
    try:
        result = simulate_to_store(settings, config, replace=args.replace, progress=True)
    except FileExistsError as exc:
        raise SettingsError(f"{exc.filename} exists: this run (same start and seed) was "
                            "simulated before; pass --replace to redo it") from None
    print(json.dumps(result))
    return 0


# ---- import-captures --------------------------------------------------------------------------

def _register_import_captures(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-captures",
        help="copy recorded capture files into the raw capture store",
        description="Copy recorded captures (docs/DATA_FORMATS.md formats 2, 3, 4, or raw store files) "
        "unchanged into <home>/raw/exchange=<x>/symbol=<S>/date=<day of the first line>/. A "
        "capture that runs past UTC midnight (receive time) is split into one part per day "
        "(<name>.partNN.<ext>, lines verbatim) so every day's snapshots see their rows.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--symbol", default=None, help="symbol folder (default from settings)")
    p.add_argument("--exchange", default=None, help="exchange folder (default from settings)")
    p.add_argument("--date", default=None,
                   help="force the day folder (YYYY-MM-DD; the file is copied whole, not split)")
    p.set_defaults(func=_import_captures)


def _import_captures(args, settings) -> int:
    from pathlib import Path

    from trade_pipeline.settings import check_exchange, check_symbol
    from trade_pipeline.storage.raw_store import import_capture, import_capture_parts

    symbol = check_symbol(args.symbol or settings.symbol)
    exchange = check_exchange(args.exchange or settings.exchange)
    from trade_pipeline.storage.input_files import check_input_file

    for name in args.files:  # every file checked before any is copied
        check_input_file(name, "capture file")
    settings.ensure_dirs()
    copied = []
    for name in args.files:
        if args.date:
            copied.append(str(import_capture(settings, Path(name), exchange, symbol, args.date)))
        else:
            copied += [str(p) for p in import_capture_parts(settings, Path(name), exchange, symbol)]
    print(json.dumps({"imported": copied}))
    return 0


# ---- snapshots (book reconstruction + grid sampling) -------------------------------------------

def _register_snapshots(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "snapshots",
        help="rebuild the order book from captures and write the canonical snapshot table",
        description="Rebuild the L2 book from recorded captures (docs/DATA_FORMATS.md formats 2, 3, 4 and raw "
        "store files; auto-detected per file), sample it on the epoch-aligned grid (docs/DATA_FORMATS.md "
        "'canonical snapshot stream') and write l2_snapshots rows to a Parquet file. Files are "
        "processed in the order given, as one stream. Prints a JSON report on stdout (messages, "
        "rows, sessions, gaps, crossed grid times skipped, bad lines, truncated files, ...). "
        "Exit 2 on an unknown/mismatched format, 1 when the input holds no book message.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", metavar="FILE",
                        help="capture files (.jsonl, .jsonl.gz, .gz, .raw.gz), in processing order")
    source.add_argument("--day", metavar="YYYY-MM-DD",
                        help="build one UTC day from the raw capture store exactly as the "
                        "l2_snapshots asset does: the settings' exchange and symbol (--symbol), "
                        "continuing the previous day's stored checkpoint, reading ahead into the "
                        "next day's files; writes nothing into the lake")
    p.add_argument("--symbol", default=None, help="with --day: symbol (default from settings)")
    p.add_argument("--format", default=None, choices=["auto", "bybit", "ccxt", "binance"],
                   help="input format (default auto; bybit covers format 2 and raw store files)")
    p.add_argument("--cadence", default=None,
                   help="grid step, e.g. 100ms, 1s, or 'event' for one row per message "
                   "(default 100ms; with --day the settings' cadence)")
    p.add_argument("--depth", type=int, default=None,
                   help="levels kept per side, 1..10 (default 10); levels beyond it are written "
                   "as null price / size 0")
    p.add_argument("--tz", default=None,
                   help="zone of naive ccxt timestamps: UTC (default), an IANA name or +HH:MM")
    p.add_argument("--state-in", default=None, metavar="JSON",
                   help="resume from a book checkpoint written by --state-out (with --day: "
                   "instead of the previous day's stored checkpoint)")
    p.add_argument("--state-out", default=None, metavar="JSON",
                   help="write the final book checkpoint (to continue a session later)")
    p.add_argument("--output", required=True, metavar="OUT.parquet", help="Parquet file to write")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.set_defaults(func=_snapshots)


def _snapshots(args, settings) -> int:
    import sys

    from trade_pipeline.market.readers import FormatError
    from trade_pipeline.market.snapshots import check_output_path, write_snapshots
    from trade_pipeline.settings import SettingsError, check_symbol

    if args.symbol:
        check_symbol(args.symbol)  # a bad value is named as such, whatever else is wrong
    if args.day:
        return _snapshots_day(args, settings)
    if args.symbol:
        raise SettingsError("--symbol goes with --day (files carry their own symbol)")
    args.format = args.format or "auto"
    args.cadence = args.cadence or "100ms"
    args.depth = 10 if args.depth is None else args.depth
    if not 1 <= args.depth <= 10:
        raise SettingsError(f"--depth must be between 1 and 10, got {args.depth}")
    # never replace a capture, never write into the raw store (or its archive)
    protected = {"raw capture store": settings.raw_dir, "raw archive": settings.archive_dir}
    check_output_path(args.output, args.input, protected)
    if args.state_out:
        check_output_path(args.state_out, [*args.input, args.output], protected)
    initial = None
    if args.state_in:
        initial = _read_state(args.state_in)
    try:
        report, state = write_snapshots(
            args.input, args.output, fmt=args.format, cadence=args.cadence, depth=args.depth,
            initial_state=initial, tz=args.tz, progress=not args.no_progress,
        )
    except (FormatError, FileNotFoundError, ValueError) as exc:
        print(f"trade-pipeline snapshots: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()), flush=True)
    if report.messages == 0:
        print("trade-pipeline snapshots: error: the input holds no book message "
              f"(empty files: {len(report.empty_files)}); nothing written", file=sys.stderr)
        return 1
    if args.state_out:
        from trade_pipeline.storage.atomic import write_text_atomic

        write_text_atomic(json.dumps(state.to_dict()), args.state_out, "--state-out")
    return 0


def _read_state(path: str) -> dict:
    """A book checkpoint written by --state-out, or one clear error."""
    from trade_pipeline.storage.input_files import InputFileError, check_input_file

    checked = check_input_file(path, "--state-in")
    try:
        state = json.loads(checked.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(f"--state-in {path}: not a JSON book checkpoint ({exc})") from None
    if not isinstance(state, dict):
        raise InputFileError(f"--state-in {path}: not a book checkpoint (expected a JSON object)")
    return state


# ---- trades (the public trade feed) ----------------------------------------------------------

def _register_trades(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "trades",
        help="read the public trades of captures into the canonical l2_trades table",
        description="Read every public trade of recorded captures (Bybit format 2b lines, raw "
        "store publicTrade pushes, Binance @trade streams; auto-detected per file) and write "
        "l2_trades rows (timestamp, exchange, symbol, trade_id, side = taker side, price, size, "
        "received_timestamp, sequence_id) to a Parquet file, in order of receipt. Bad trades "
        "are counted per reason, repeated trade ids counted and kept once. Prints a JSON "
        "report on stdout. Exit 2 on an unknown/mismatched format, 1 when the input holds no "
        "trade line.",
    )
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="capture files (.jsonl, .jsonl.gz, .gz, .raw.gz), in processing order")
    p.add_argument("--format", default="auto", choices=["auto", "bybit", "binance"],
                   help="input format (default auto; bybit covers format 2b and raw store files)")
    p.add_argument("--output", required=True, metavar="OUT.parquet", help="Parquet file to write")
    p.set_defaults(func=_trades)


def _trades(args, settings) -> int:
    import sys

    from trade_pipeline.market.readers import FormatError
    from trade_pipeline.market.trades import write_trades

    try:
        report = write_trades(args.input, args.output, fmt=args.format)
    except (FormatError, FileNotFoundError) as exc:
        print(f"trade-pipeline trades: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict()), flush=True)
    if report.counters.trade_lines == 0:
        print("trade-pipeline trades: error: the input holds no trade line "
              f"(empty files: {len(report.empty_files)}); nothing written", file=sys.stderr)
        return 1
    return 0


# ---- events (the raw event stream for the event-level backtest and hftbacktest) --------------

def _register_events(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "events",
        help="turn captures into the raw event stream (.npz, hftbacktest's layout)",
        description="Rebuild book changes and trades from recorded captures (every format the "
        "snapshots command reads) as one event stream in order of receipt: depth events, "
        "snapshots as clear + snapshot events, trades, with exchange and receive times in ns "
        "(hftbacktest's event layout). Same gap and sequence rules as `snapshots`. Writes an "
        ".npz (array `data`, what hftbacktest loads; `report`: the JSON report) and prints "
        "the report. Exit 2 on an unknown/mismatched format, 1 when the input holds no event.",
    )
    p.add_argument("--input", nargs="+", required=True, metavar="FILE",
                   help="capture files, in processing order (one stream)")
    p.add_argument("--format", default="auto", choices=["auto", "bybit", "ccxt", "binance"],
                   help="input format (default auto)")
    p.add_argument("--tz", default=None,
                   help="zone of naive ccxt timestamps: UTC (default), an IANA name or +HH:MM")
    p.add_argument("--receipt-order", action="store_true",
                   help="store the stream as built (order of receipt, both clocks on every "
                   "event) instead of hftbacktest's order (exchange events by exch_ts, local "
                   "events by local_ts; out-of-order trades split in two)")
    p.add_argument("--output", required=True, metavar="OUT.npz", help=".npz file to write")
    p.set_defaults(func=_events)


def _events(args, settings) -> int:
    import sys

    from trade_pipeline.market.event_stream import build_event_stream, write_event_npz
    from trade_pipeline.market.readers import FormatError
    from trade_pipeline.settings import SettingsError

    if not args.output.endswith(".npz"):
        raise SettingsError(f"--output must end in .npz, got {args.output!r}")
    try:
        events, report = build_event_stream(args.input, fmt=args.format, tz=args.tz)
    except (FormatError, FileNotFoundError) as exc:
        print(f"trade-pipeline events: error: {exc}", file=sys.stderr)
        return 2
    out = report.to_dict()
    print(json.dumps(out), flush=True)
    if len(events) == 0:
        print("trade-pipeline events: error: the input holds no book message or trade; "
              "nothing written", file=sys.stderr)
        return 1
    write_event_npz(args.output, events, report, for_hftbacktest=not args.receipt_order)
    return 0


def _snapshots_day(args, settings) -> int:
    """`snapshots --day`: the l2_snapshots asset's build (market.day_snapshots.build_day),
    written to --output instead of the lake."""
    from trade_pipeline.market.day_snapshots import build_day
    from trade_pipeline.market.snapshots import PARQUET_OPTIONS, check_output_path
    from trade_pipeline.settings import SettingsError, check_date, check_symbol
    from trade_pipeline.storage.atomic import write_parquet_atomic, write_text_atomic

    given = [name for name in ("format", "cadence", "depth", "tz") if getattr(args, name)]
    if given:
        raise SettingsError(f"--day builds as the asset does (settings' cadence, all levels, "
                            f"every format): drop --{', --'.join(given)}")
    day = check_date(args.day)
    if args.symbol:
        settings = settings.with_(symbol=check_symbol(args.symbol))
    # never write into the raw store (or its archive)
    protected = {"raw capture store": settings.raw_dir, "raw archive": settings.archive_dir}
    check_output_path(args.output, [], protected)
    if args.state_out:
        check_output_path(args.state_out, [args.output], protected)
    kwargs = {}
    if args.state_in:
        kwargs["initial_state"] = _read_state(args.state_in)
    built = build_day(settings, day, **kwargs)
    with built.timer.stage("write"):
        output = write_parquet_atomic(built.frame, args.output, "--output", **PARQUET_OPTIONS)
    out = {**built.report.to_dict(), **built.summary(),
           "stage_seconds": built.timer.to_dict(), "output": str(output)}
    print(json.dumps(out), flush=True)
    if args.state_out:
        write_text_atomic(json.dumps(built.final_state.to_dict()), args.state_out, "--state-out")
    return 0
