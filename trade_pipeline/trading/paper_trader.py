"""The paper trader: the per-message live path, no I/O of its own (besides the online store).

message -> `LiveSampler` (book + grid, the batch sampler's code) -> grid row ->
`OnlineFeatures` (the batch kernels, one row at a time) -> compiled model -> then either

- grid execution: `next_signal` -> `TradingEngine.on_row` (the grid backtest's step; market
  orders), or
- event execution: the message (book push or trade push) becomes events through the event
  backtest's own builder and each row's prediction a signal (usable from this message's
  receive time), fed to the event backtest's driver and strategy (`EventRun`, live): limit
  orders with queue position and latencies, filled by the stream's trades.

Either way the live run equals the backtest over the same stream. Tick to signal is measured
per grid row: from the frame's arrival in the process to the signal (network excluded).

A/B (grid execution): a shadow model sees the same rows and features; its predictions and
signals are kept (and simulated on its own engine) beside the champion's.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from trade_pipeline.market.schema import BOOK_COLUMNS
from trade_pipeline.trading.engine import Book, TradingConfig, TradingEngine
from trade_pipeline.trading.model_adapter import LoadedModel
from trade_pipeline.trading.strategy import next_signal, resolve_thresholds

# `_process` slices a sampler row (BOOK_COLUMNS order) into a Book by position.
if list(BOOK_COLUMNS[:4]) != ["bid_price_1", "bid_size_1", "bid_price_2", "bid_size_2"] or \
        list(BOOK_COLUMNS[20:22]) != ["ask_price_1", "ask_size_1"] or len(BOOK_COLUMNS) != 40:
    raise RuntimeError("BOOK_COLUMNS layout changed: update PaperTrader._process")


@dataclass
class ModelTrack:
    """One model's view of the stream: predictions, signals and its own simulated engine."""

    model: LoadedModel
    engine: TradingEngine
    index: np.ndarray | None  # positions of the model's features in the catalog order
    signal: int = 0
    ts_us: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    signals: list = field(default_factory=list)

    def __post_init__(self) -> None:
        # Bound once: the compiled evaluator's row entry (expected return), skipping the
        # adapter layers.
        self._row = self.model.row_function()
        self._sel = np.empty(len(self.index), dtype=np.float64) if self.index is not None else None

    def predict(self, x: np.ndarray) -> float:
        if self.index is None:
            return self._row(x)
        np.take(x, self.index, out=self._sel)  # precomputed positions, preallocated buffer
        return self._row(self._sel)


def feature_index(model: LoadedModel, names: list[str]) -> np.ndarray | None:
    if list(model.feature_names) == list(names):
        return None
    pos = {n: i for i, n in enumerate(names)}
    missing = [n for n in model.feature_names if n not in pos]
    if missing:
        raise ValueError(f"model {model.label} uses features the catalog lacks: {missing[:5]}")
    return np.array([pos[n] for n in model.feature_names], dtype=np.int64)


class EventExecution:
    """Event execution of a paper session: the batch event backtest, fed message by message.

    Each frame (book push or trade push) becomes events through the event-stream builder the
    backtest uses (`market.event_stream`, line by line: the same parse, the same decisions,
    the same trades), then the engine's order (`monotone_exchange_clock`, carried across
    frames) and the config's feed clock. The predictions of the rows a message completes
    become signals usable from the receive time of that message's first book event (the
    batch run uses the first book event after the row's time: the same message). Rows
    completed by a message without book events wait for the next one that has some."""

    def __init__(self, config):
        from trade_pipeline.market.event_stream import EventStreamBuilder
        from trade_pipeline.trading.event_backtest import EventRun

        self.config = config
        self.run = EventRun(config, None, live=True)
        self.builder = EventStreamBuilder(fmt="bybit_raw")
        feed = config.execution.feed_latency_ms
        self.feed_ns = None if feed is None else round(feed * 1_000_000)
        self.last_exch: int | None = None
        self.exch_ts_raised = 0
        self.pending: list[float] = []

    def on_message(self, raw: bytes | str, recv_ns: int | None,
                   predictions: list[float]) -> None:
        from trade_pipeline.market.event_stream import event_type, monotone_exchange_clock
        from trade_pipeline.market.events import TRADE_EVENT

        self.pending.extend(predictions)
        frame = raw.encode() if isinstance(raw, str) else raw
        # the raw store's line for this frame (a frame may carry its receive time already)
        line = frame if recv_ns is None else b"%d %s" % (recv_ns, frame)
        ev = self.builder.on_line(line)
        if len(ev) == 0:
            return
        self.exch_ts_raised += monotone_exchange_clock(ev, self.last_exch)
        self.last_exch = int(ev["exch_ts"][-1])
        if self.feed_ns is not None:
            ev["local_ts"] = ev["exch_ts"] + self.feed_ns
        book = np.flatnonzero(event_type(ev) != TRADE_EVENT)
        if self.pending and len(book):
            sig_val = np.asarray(self.pending, dtype=np.float64)
            finite = np.isfinite(sig_val)
            sig_ts = np.full(int(finite.sum()), ev["local_ts"][book[0]], dtype=np.int64)
            self.pending = []
            self.run.append(ev, sig_ts, sig_val[finite])
        else:
            self.run.append(ev)
        self.run.advance()

    def report(self) -> dict:
        """What the builder read and emitted (the event backtest's input report)."""
        out = self.builder.current_report().to_dict()
        out["exch_ts_raised"] = self.exch_ts_raised
        return out

    def finish(self) -> None:
        self.pending = []  # rows no later message completes are never usable (as in batch)
        self.run.finish()

    def stop(self, reason: str) -> None:
        self.run.stop(reason)


class PaperTrader:
    """The per-message live path; no I/O of its own besides the optional online store."""

    def __init__(self, *, sampler, features, feature_names: list[str], model: LoadedModel,
                 config: TradingConfig, shadow: LoadedModel | None = None, online_store=None,
                 exchange: str = "bybit", symbol: str = "BTCUSDT", events=None,
                 allow_in_sample: bool = False):
        self.sampler = sampler
        self.features = features
        self.feature_names = list(feature_names)
        self.config = config
        self.exchange, self.symbol = exchange, symbol
        self.main = ModelTrack(model, TradingEngine(config), feature_index(model, self.feature_names))
        self.shadow = (ModelTrack(shadow, TradingEngine(config), feature_index(shadow, self.feature_names))
                       if shadow is not None else None)
        self.events = EventExecution(events) if events is not None else None
        self.online_store = online_store
        self.tick_to_signal_ns: list[int] = []
        self.equity_curve: list[float] = []
        self._written_rows = 0
        self._written_trades = 0
        self.messages = 0
        self.rows = 0
        self.last_x: np.ndarray | None = None
        # The model's decision rule (or an explicit [strategy] threshold), and its own for
        # the shadow; the out-of-sample guard of the traded model's training range.
        self.thresholds = resolve_thresholds(config.strategy, config.execution, model.rule)
        self._entry, self._exit = self.thresholds.entry, self.thresholds.exit
        self._shadow_thr = (resolve_thresholds(config.strategy, config.execution, shadow.rule)
                            if shadow is not None else None)
        self.guard = model.oos_guard(allow_in_sample)
        self.in_sample = False

    @property
    def engine(self) -> TradingEngine:
        return self.main.engine

    def on_message(self, raw, recv_ns: int, t0_ns: int | None = None) -> int:
        """Process one WebSocket frame; returns the number of grid rows it emitted.

        First the signal of every row the frame completes (the latency-critical part), then
        the simulated orders, the shadow model and the online-store write (latest row)."""
        t0 = time.perf_counter_ns() if t0_ns is None else t0_ns
        self.messages += 1
        block = self.sampler.on_message_arrays(raw, recv_ns)
        first = len(self.main.predictions)
        if block is not None:
            self._process(block[0], block[1], t0)
        if self.events is not None:
            self.events.on_message(raw, recv_ns, self.main.predictions[first:])
        return 0 if block is None else block[0].shape[0]

    def finish(self) -> int:
        """End of input: the sampler's last grid rows (as the batch sampler emits at the end)."""
        block = self.sampler.close_arrays()
        if block is not None:
            self._process(block[0], block[1], time.perf_counter_ns())
        if self.events is not None:
            self.events.finish()
        return 0 if block is None else block[0].shape[0]

    def _process(self, out_i: np.ndarray, out_f: np.ndarray, t0: int) -> None:
        """Rows as the sampler's arrays (out_i: timestamp us, receive us, update id, session id;
        out_f: the 40 book values in BOOK_COLUMNS order), views valid during this call only.

        Hot loop: no per-row dicts or tuples; the features come back in the engine's own
        buffer (copied once, for the steps after the signal) and go straight to the compiled
        model (feature selection precomputed as an index array, or none)."""
        main = self.main
        entry, exit_ = self._entry, self._exit
        update = self.features.update_book_view
        predict = main.predict
        clock = time.perf_counter_ns
        lat = self.tick_to_signal_ns
        ts_list = out_i[:, 0].tolist()
        sid_list = out_i[:, 3].tolist()
        n = len(ts_list)
        if self.guard.check_span(ts_list[0], ts_list[-1]):
            self.in_sample = True
        xs = []
        preds = []
        sigs = []
        sig = main.signal
        for k in range(n):
            x = update(ts_list[k], sid_list[k], out_f[k])
            pred = predict(x)
            sig = next_signal(sig, pred, entry, exit_)
            lat.append(clock() - t0)
            xs.append(x.copy())
            preds.append(pred)
            sigs.append(sig)
        main.signal = sig
        # After the signals: simulated orders, the shadow model, bookkeeping.
        books = out_f.tolist()
        shadow = self.shadow
        grid = self.events is None
        for k in range(n):
            ts, x, pred, sig = ts_list[k], xs[k], preds[k], sigs[k]
            if grid:
                v = books[k]  # BOOK_COLUMNS order: bid p/q pairs by level, then ask p/q pairs
                book = Book(v[0:20:2], v[1:20:2], v[20::2], v[21::2])
                self.equity_curve.append(main.engine.on_row(ts, book, sig))
            main.ts_us.append(ts)
            main.predictions.append(pred)
            main.signals.append(sig)
            if shadow is not None and grid:
                sp = shadow.predict(x)
                shadow.signal = next_signal(shadow.signal, sp, self._shadow_thr.entry,
                                            self._shadow_thr.exit)
                shadow.engine.on_row(ts, book, shadow.signal)
                shadow.ts_us.append(ts)
                shadow.predictions.append(sp)
                shadow.signals.append(shadow.signal)
            self.rows += 1
        self.last_x = xs[-1]
        if self.online_store is not None:
            self.online_store.put(self.exchange, self.symbol, main.ts_us[-1], self.last_x,
                                  str(main.model.version))

    def take_unwritten(self, run_id: str) -> dict:
        """Trades and predictions not yet handed to the warehouse (marks them handed)."""
        from trade_pipeline.trading.store import predictions_frame

        lo, hi = self._written_rows, self.rows
        preds = []
        for track in [self.main] + ([self.shadow] if self.shadow else []):
            if hi > lo:
                preds.append(predictions_frame(
                    track.ts_us[lo:hi], track.predictions[lo:hi], track.signals[lo:hi],
                    exchange=self.exchange, symbol=self.symbol, model_name=track.model.name,
                    model_version=track.model.version, source="paper", run_id=run_id,
                    role="champion" if track is self.main else "shadow"))
        t0 = self._written_trades
        trades = self.engine.trades[t0:]
        self._written_rows, self._written_trades = hi, t0 + len(trades)
        return {"trades": trades, "trade_offset": t0, "predictions": preds}

    def flatten_now(self, reason: str):
        """Kill switch / stale data: close at the last book seen and halt (both tracks); with
        event execution, cancel every resting order and close with market orders."""
        if self.events is not None:
            self.events.stop(reason)
            return None
        trade = self.engine.flatten_now(reason)
        if self.shadow is not None:
            self.shadow.engine.flatten_now(reason)
        if self.equity_curve:
            self.equity_curve[-1] = self.engine.equity
        return trade
