"""Captures -> the raw event stream (`events.EVENT_DTYPE`, hftbacktest's layout).

`build_event_stream(paths)` reads Bybit recorded files (formats 2 + 2b), raw store files
(orderbook + publicTrade pushes), Binance raw streams (depth diffs + trades) and ccxt full
books, and returns every book change and trade as one event array, in order of receipt:

- a book message applied by the book reconstruction's rules becomes one `DEPTH_EVENT` per
  level (size 0 deletes the level);
- a message that (re)starts the book (a snapshot, Bybit `u == 1`, a ccxt full book, the
  Binance diff that syncs after a REST snapshot) becomes `DEPTH_CLEAR_EVENT` for the bid and
  the ask side, then one `DEPTH_SNAPSHOT_EVENT` per level of the whole book after it;
- a gap (update-id break, ccxt silence) or a Binance REST snapshot invalidates the book:
  `DEPTH_CLEAR_EVENT` for both sides, then nothing of the book until the next snapshot /
  resync. Duplicates, deltas before any snapshot or after a gap and stale Binance diffs emit
  nothing (counted, as in the snapshot report);
- a trade becomes a `TRADE_EVENT` (`BUY_EVENT`: the taker bought); duplicates and bad
  trades are dropped as `market.trades` drops them (counted).

Every event carries `EXCH_EVENT | LOCAL_EVENT`. `exch_ts` is the exchange's time of record in
ns: for book events the time the grid sampler applies the message at (docs/DATA_FORMATS.md
rule 7: a clock fault, a time of record that goes back or runs ahead of the receive clock, is
applied at the previous time plus the receive clock's advance; so book events' `exch_ts` never
decreases); for trades the trade
time `T`, as sent (a trade may carry a time before the book push received just before it:
`exch_ts_backwards` counts such steps; `hftbacktest_order` fixes the order for hftbacktest).
`local_ts` is the receive time (us resolution, in ns), never decreasing (a lower one is
clamped and counted); sources without a receive time (ccxt) use `exch_ts`.

`DEPTH_CLEAR_EVENT`'s `px` follows hftbacktest (`clear_depth(side, px)`: bids at or above
`px`, asks at or below it): the deepest price the stream has put on that side since its last
clear (or the new snapshot's deepest price, whichever is further), so the whole side goes; NaN
when nothing was ever there.

The decisions (clock, apply / skip / gap / start) and their commit (counters, book, state)
are the grid sampler's own code (`sampler.decide_message`, `sampler.commit_message`) on the
same parsed messages, so replaying the depth events up to a grid time gives the book of that
`l2_snapshots` row (tests check it on the real captures and on damaged copies, clock faults
included).
"""

import json
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np

from trade_pipeline.market.book import (
    ASK_KEYS,
    ASK_SIZES,
    BID_KEYS,
    BID_SIZES,
    grow_book,
    new_book,
)
from trade_pipeline.market.events import (
    BOTH_CLOCKS,
    BUY_EVENT,
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EVENT_DTYPE,
    EVENT_TYPE_MASK,
    EXCH_EVENT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
)
from trade_pipeline.market.messages import (
    F_NA,
    F_NB,
    F_RECV,
    NFIELDS,
    NULL_I64,
    MessageBuffer,
)
from trade_pipeline.market.readers import (
    CCXT_MAX_GAP_S,
    EXCHANGE_OF,
    FileStatus,
    ParseContext,
    iter_line_blocks,
    parse_block,
    parse_tz,
)
from trade_pipeline.market.sampler import (
    A_APPLY,
    A_BREAK,
    A_FULL,
    A_GAP,
    A_REST,
    A_START,
    A_SYNC,
    COUNTER_NAMES,
    NCOUNTERS,
    NPARAMS,
    P_MAX_GAP,
    S_LAST_T,
    S_NA,
    S_NB,
    _good_level,
    commit_message,
    decide_message,
    fresh_state,
)
from trade_pipeline.market.trades import (
    TradeBuffer,
    TradeCounters,
    TradeParser,
    TradeReport,
    plan_files,
)

ITEM_BOOK = 0  # the next book message
ITEM_TRADE = 1  # the next trade

# ---- event counters ----------------------------------------------------------------------------
E_DEPTH = 0
E_SNAPSHOT = 1
E_CLEAR = 2
E_TRADE = 3
E_LOCAL_BACKWARDS = 4  # a message or trade received "before" the previous one (clamped)
E_NEGATIVE_LATENCY = 5  # local_ts < exch_ts (the two clocks disagree, e.g. Binance's)
E_EXCH_BACKWARDS = 6  # exch_ts lower than the previous event's (trades vs book pushes)
E_NO_RECV = 7  # messages and trades without a receive time (local_ts = exch_ts)
NECOUNTERS = 8
EVENT_COUNTER_NAMES = ("depth_events", "snapshot_events", "clear_events", "trade_events",
                       "local_ts_backwards", "negative_feed_latency", "exch_ts_backwards",
                       "no_receive_time")

# kernel scalars (int64 vector)
X_ITEM, X_MSG, X_TRADE, X_OFF, X_LAST_LOCAL, X_LAST_EXCH = 0, 1, 2, 3, 4, 5
NX = 6

_DEPTH_BID = np.uint64(DEPTH_EVENT | BUY_EVENT | BOTH_CLOCKS)
_DEPTH_ASK = np.uint64(DEPTH_EVENT | SELL_EVENT | BOTH_CLOCKS)
_SNAP_BID = np.uint64(DEPTH_SNAPSHOT_EVENT | BUY_EVENT | BOTH_CLOCKS)
_SNAP_ASK = np.uint64(DEPTH_SNAPSHOT_EVENT | SELL_EVENT | BOTH_CLOCKS)
_CLEAR_BID = np.uint64(DEPTH_CLEAR_EVENT | BUY_EVENT | BOTH_CLOCKS)
_CLEAR_ASK = np.uint64(DEPTH_CLEAR_EVENT | SELL_EVENT | BOTH_CLOCKS)
_TRADE_BUY = np.uint64(TRADE_EVENT | BUY_EVENT | BOTH_CLOCKS)
_TRADE_SELL = np.uint64(TRADE_EVENT | SELL_EVENT | BOTH_CLOCKS)


@nb.njit(cache=True, nogil=True, inline="always")
def _put(o_ev, o_exch, o_local, o_px, o_qty, k, ev, exch, local, px, qty):
    o_ev[k] = ev
    o_exch[k] = exch
    o_local[k] = local
    o_px[k] = px
    o_qty[k] = qty
    return k + 1


@nb.njit(cache=True, nogil=True)
def _clear_both(o_ev, o_exch, o_local, o_px, o_qty, k, exch, local, pub, book, st, ecnt,
                with_book):
    """Clear both sides; px covers every price published since the last clear (pub) and,
    with_book, the current book (a snapshot about to be published)."""
    bid_px = pub[0]
    ask_px = pub[1]
    if with_book:
        nbid = st[S_NB]
        nask = st[S_NA]
        if nbid > 0:
            deepest = -book[BID_KEYS, nbid - 1]
            if np.isnan(bid_px) or deepest < bid_px:
                bid_px = deepest
        if nask > 0:
            deepest = book[ASK_KEYS, nask - 1]
            if np.isnan(ask_px) or deepest > ask_px:
                ask_px = deepest
    k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _CLEAR_BID, exch, local, bid_px, 0.0)
    k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _CLEAR_ASK, exch, local, ask_px, 0.0)
    ecnt[E_CLEAR] += 2
    pub[0] = np.nan
    pub[1] = np.nan
    return k


@nb.njit(cache=True, nogil=True)
def _publish_book(o_ev, o_exch, o_local, o_px, o_qty, k, exch, local, pub, book, st, ecnt):
    """The whole book as snapshot events, bids best first, then asks."""
    nbid = st[S_NB]
    nask = st[S_NA]
    for j in range(nbid):
        k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _SNAP_BID, exch, local,
                 -book[BID_KEYS, j], book[BID_SIZES, j])
    for j in range(nask):
        k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _SNAP_ASK, exch, local,
                 book[ASK_KEYS, j], book[ASK_SIZES, j])
    ecnt[E_SNAPSHOT] += nbid + nask
    pub[0] = -book[BID_KEYS, nbid - 1] if nbid > 0 else np.nan
    pub[1] = book[ASK_KEYS, nask - 1] if nask > 0 else np.nan
    return k


@nb.njit(cache=True, nogil=True)
def _stamp(x, ecnt, exch, recv_us):
    """local_ts for an event: its receive time (ns), never lower than the previous one."""
    if recv_us == NULL_I64:
        local = exch
        ecnt[E_NO_RECV] += 1
    else:
        local = recv_us * 1000
    if local < x[X_LAST_LOCAL]:
        ecnt[E_LOCAL_BACKWARDS] += 1
        local = x[X_LAST_LOCAL]
    x[X_LAST_LOCAL] = local
    return local


@nb.njit(cache=True, nogil=True)
def _count_times(x, ecnt, k0, k, o_exch, o_local):
    for j in range(k0, k):
        if o_exch[j] < x[X_LAST_EXCH]:
            ecnt[E_EXCH_BACKWARDS] += 1
        x[X_LAST_EXCH] = o_exch[j]
        if o_local[j] < o_exch[j]:
            ecnt[E_NEGATIVE_LATENCY] += 1


@nb.njit(cache=True, nogil=True)
def build_events(items, fields, levels, tr_time, tr_recv, tr_side, tr_price, tr_size,
                 x, book, st, prm, cnt, ecnt, pub, o_ev, o_exch, o_local, o_px, o_qty):
    """Turn items (ITEM_BOOK / ITEM_TRADE, in order of receipt) into events; returns the
    events written into o_*, or -1 when the book needs room (grow it, call again).

    Resumable: `x` holds where it stopped (item, message, trade, level offset); it stops
    before an item whose worst case does not fit the output (call again with a fresh one).
    Book decisions and commits are `sampler.replay`'s own functions (without grid emission).
    """
    if max(st[S_NB], st[S_NA]) + len(levels) // 2 + 1 > book.shape[1]:
        return -1
    cap = len(o_ev)
    k = 0
    n_items = len(items)
    while x[X_ITEM] < n_items:
        k0 = k
        if items[x[X_ITEM]] == ITEM_TRADE:
            if k + 1 > cap:
                break
            j = x[X_TRADE]
            exch = tr_time[j] * 1000
            local = _stamp(x, ecnt, exch, tr_recv[j])
            ev = _TRADE_BUY if tr_side[j] > 0 else _TRADE_SELL
            k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, ev, exch, local, tr_price[j],
                     tr_size[j])
            ecnt[E_TRADE] += 1
            x[X_TRADE] += 1
            x[X_ITEM] += 1
            _count_times(x, ecnt, k0, k, o_exch, o_local)
            continue
        m = x[X_MSG] * NFIELDS
        nbids = fields[m + F_NB]
        nasks = fields[m + F_NA]
        # worst case: two clears and the whole book (plus this message's levels)
        if k + 4 + st[S_NB] + st[S_NA] + 2 * (nbids + nasks) > cap:
            break
        # the grid sampler's decision and commit (rule 7 clock, continuity, counters, book)
        action, t, fault, backwards, quiet, replayed = decide_message(fields, m, st, prm)
        off = x[X_OFF]
        t_ev = t
        if action == A_REST and st[S_LAST_T] != NULL_I64 and t_ev < st[S_LAST_T]:
            t_ev = st[S_LAST_T]  # a REST snapshot's time is its receive time: keep order
        exch = t_ev * 1000
        local = _stamp(x, ecnt, exch, fields[m + F_RECV])
        published = not (np.isnan(pub[0]) and np.isnan(pub[1]))
        commit_message(fields, m, levels, off, action, t, fault, backwards, quiet, replayed,
                       book, st, prm, cnt)

        if action in (A_GAP, A_BREAK) or (action == A_REST and published):
            # the book is invalid until the next snapshot / resync: clear both sides
            k = _clear_both(o_ev, o_exch, o_local, o_px, o_qty, k, exch, local, pub, book,
                            st, ecnt, False)
        elif action in (A_START, A_FULL, A_SYNC):
            k = _clear_both(o_ev, o_exch, o_local, o_px, o_qty, k, exch, local, pub, book,
                            st, ecnt, True)
            k = _publish_book(o_ev, o_exch, o_local, o_px, o_qty, k, exch, local, pub,
                              book, st, ecnt)
        elif action == A_APPLY:
            for j in range(2 * off, 2 * (off + nbids), 2):
                px = levels[j]
                if _good_level(px, levels[j + 1]):
                    k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _DEPTH_BID, exch, local,
                             px, levels[j + 1])
                    if levels[j + 1] > 0.0 and (np.isnan(pub[0]) or px < pub[0]):
                        pub[0] = px
            for j in range(2 * (off + nbids), 2 * (off + nbids + nasks), 2):
                px = levels[j]
                if _good_level(px, levels[j + 1]):
                    k = _put(o_ev, o_exch, o_local, o_px, o_qty, k, _DEPTH_ASK, exch, local,
                             px, levels[j + 1])
                    if levels[j + 1] > 0.0 and (np.isnan(pub[1]) or px > pub[1]):
                        pub[1] = px
            ecnt[E_DEPTH] += k - k0
        x[X_OFF] = off + nbids + nasks
        x[X_MSG] += 1
        x[X_ITEM] += 1
        _count_times(x, ecnt, k0, k, o_exch, o_local)
    return k


# ---- the Python side: lines -> items, messages and trades ---------------------------------------
@dataclass
class EventReport:
    """The run report of an event-stream build: every line, message, trade and event counted."""

    files: list[dict] = field(default_factory=list)
    exchange: str | None = None
    symbol: str | None = None
    messages: int = 0  # book messages parsed
    bad_lines: int = 0  # book lines that could not be read (trade lines: see trades)
    out_of_range_lines: int = 0  # bad lines with an implausible time or id (DATA_FORMATS rule 8)
    bad_receive_times: int = 0  # implausible receive times dropped (the message kept)
    bad_line_examples: list[str] = field(default_factory=list)
    other_symbol: int = 0
    control_messages: int = 0
    non_book: dict[str, int] = field(default_factory=dict)
    book: dict[str, int] = field(default_factory=dict)  # the sampler's counters
    events: dict[str, int] = field(default_factory=dict)
    trades: dict = field(default_factory=dict)  # market.trades' report (without files)
    truncated_files: list[dict] = field(default_factory=list)
    empty_files: list[str] = field(default_factory=list)
    first_local_ts: int | None = None
    last_local_ts: int | None = None

    def to_dict(self) -> dict:
        return {
            "events": sum(self.events.get(k, 0) for k in EVENT_COUNTER_NAMES[:4]),
            **self.events,
            "messages": self.messages,
            "bad_lines": self.bad_lines,
            "out_of_range_lines": self.out_of_range_lines,
            "bad_receive_times": self.bad_receive_times,
            "trades": self.trades.get("trades", 0),
            "bad_trades": self.trades.get("bad_trades", 0),
            "duplicate_trades": self.trades.get("duplicates", 0),
            "exchange": self.exchange,
            "symbol": self.symbol,
            "first_local_ts": self.first_local_ts,
            "last_local_ts": self.last_local_ts,
            "book": dict(self.book),
            "trade_report": dict(self.trades),
            "other_symbol": self.other_symbol,
            "control_messages": self.control_messages,
            "non_book": dict(self.non_book),
            "bad_line_examples": self.bad_line_examples,
            "truncated_files": len(self.truncated_files),
            "truncated": self.truncated_files,
            "empty_files": self.empty_files,
            "files": self.files,
        }


class EventStreamBuilder:
    """One run over captures (one stream, files in the order given); `chunks()` yields event
    arrays in order, then read `.report`."""

    def __init__(self, fmt: str = "auto", tz: str | None = None, chunk_items: int = 1 << 16,
                 book_capacity: int = 256) -> None:
        self.fmt = fmt
        self.chunk_items = chunk_items
        self.ctx = ParseContext(tz=parse_tz(tz))
        self.trade_report = TradeReport()
        self.trade_counters: TradeCounters = self.trade_report.counters
        self.trades: TradeParser | None = None
        self.report = EventReport()
        # kernel state
        self.st = fresh_state()
        self.prm = np.zeros(NPARAMS, dtype=np.int64)
        self.prm[P_MAX_GAP] = int(CCXT_MAX_GAP_S * 1e6)
        self.cnt = np.zeros(NCOUNTERS, dtype=np.int64)
        self.ecnt = np.zeros(NECOUNTERS, dtype=np.int64)
        self.pub = np.full(2, np.nan)
        self.book = new_book(book_capacity)
        self.x = np.zeros(NX, dtype=np.int64)
        self.x[X_LAST_LOCAL] = np.iinfo(np.int64).min
        self.x[X_LAST_EXCH] = np.iinfo(np.int64).min
        self._lines_fed = 0  # `on_line`: the line number of the next line (bad-line examples)
        self._new_chunk()

    # -- pending input of the next kernel call
    def _new_chunk(self) -> None:
        self.msgs = MessageBuffer()
        self.tbuf = TradeBuffer()
        self.items = array("b")

    def _trade_parser(self, fmt: str) -> TradeParser:
        if self.trades is None:
            self.trades = TradeParser(fmt, symbols=self.ctx, counters=self.trade_counters)
        self.trades.switch(fmt)
        return self.trades

    def _book_lines(self, fmt: str, lines: list, name: str, base: int) -> None:
        """Parse book lines keeping one item per message, in line order.

        A run of lines is parsed in one call when each of its lines gives one message (the
        usual case); otherwise (a bad line, a control frame, Binance's REST snapshot and its
        re-fed diffs, non-book lines) it is rolled back and parsed line by line, so every
        message keeps its place among the trades."""
        buf, ctx, items = self.msgs, self.ctx, self.items
        if lines:
            yields = self._book_fast(fmt, lines, name, base)
            if yields is not None:
                items.extend(bytes(sum(yields)))  # all book messages: ITEM_BOOK each
                return
        for i, line in enumerate(lines):  # line by line, for the messages' places
            n0 = len(buf)
            replays = ctx.replays
            parse_block(fmt, [line], buf, ctx, name, base + i)
            added = len(buf) - n0
            if added:
                items.extend(bytes(added))
                ctx.messages += added - (ctx.replays - replays)

    def _block(self, fmt: str, lines: list, name: str, base: int) -> None:
        if fmt == "ccxt":  # no trades in full-book captures
            self._book_lines(fmt, lines, name, base)
            return
        parser = self._trade_parser(fmt)
        marker = parser.marker
        if not any(marker in line for line in lines):
            self._book_lines(fmt, lines, name, base)
            return
        counts: list[int] = []  # per line: trades added, or -1 for a book line
        parser.parse(lines, self.tbuf, name, base, counts)
        n_trade_lines = sum(1 for k in counts if k >= 0)
        self.ctx.non_book["trade"] = self.ctx.non_book.get("trade", 0) + n_trade_lines
        book = [line for line, k in zip(lines, counts, strict=True) if k < 0]
        yields = self._book_fast(fmt, book, name, base)
        if yields is not None:
            items = self.items
            it = iter(yields)
            for k in counts:  # book lines: their messages; trade lines: their trades
                if k < 0:
                    if next(it):
                        items.append(ITEM_BOOK)
                elif k:
                    items.extend(b"\x01" * k)
            return
        run: list = []  # consecutive book lines, parsed with their place among the trades
        run_base = base
        for i, (line, k) in enumerate(zip(lines, counts, strict=True)):
            if k < 0:
                if not run:
                    run_base = base + i
                run.append(line)
                continue
            if run:
                self._book_lines(fmt, run, name, run_base)
                run = []
            if k:
                self.items.extend(b"\x01" * k)
        if run:
            self._book_lines(fmt, run, name, run_base)

    @staticmethod
    def _expected_yields(fmt: str, lines: list) -> list[int] | None:
        """Messages each line gives when nothing unusual happens: one per line, except
        Binance, where only depth diffs give one (a REST snapshot line: None, ask per line)."""
        if fmt != "binance":
            return [1] * len(lines)
        out = []
        for line in lines:
            if b"lastUpdateId" in line:
                return None
            out.append(1 if b"@depth" in line else 0)
        return out

    def _book_fast(self, fmt: str, lines: list, name: str, base: int) -> list[int] | None:
        """Parse the book lines in one call; returns the messages of each line when they are
        the expected ones (`_expected_yields`, checked by the totals: a line never gives more
        than its expected count, and no line was bad), else undoes it all (None)."""
        expected = self._expected_yields(fmt, lines)
        if expected is None:
            return None
        buf, ctx = self.msgs, self.ctx
        saved = ctx.checkpoint()
        bad_before = ctx.bad_lines
        n0 = len(buf)
        l0 = len(buf.levels)
        parse_block(fmt, lines, buf, ctx, name, base)
        if len(buf) - n0 == sum(expected) and ctx.bad_lines == bad_before:
            ctx.messages += len(buf) - n0
            return expected
        del buf.fields[n0 * NFIELDS:]
        del buf.levels[l0:]
        ctx.rollback(saved)
        return None

    def _flush(self) -> Iterator[np.ndarray]:
        """Run the kernel over the pending items; yields event arrays."""
        if not len(self.items):
            return
        msgs, levels = self.msgs.arrays()
        fields = msgs.reshape(-1)
        flat = levels.reshape(-1)
        items = np.frombuffer(self.items, dtype=np.int8)
        tc = self.tbuf.columns()
        x = self.x
        x[X_ITEM] = x[X_MSG] = x[X_TRADE] = x[X_OFF] = 0
        cap = len(flat) // 2 + len(self.tbuf) + 2 * self.book.shape[1] + 1024
        while x[X_ITEM] < len(items):
            out = np.empty(cap, dtype=EVENT_DTYPE)
            k = build_events(items, fields, flat, tc["time"], tc["recv"], tc["side"],
                             tc["price"], tc["size"], x, self.book, self.st, self.prm,
                             self.cnt, self.ecnt, self.pub, out["ev"], out["exch_ts"],
                             out["local_ts"], out["px"], out["qty"])
            if k < 0:
                self.book = grow_book(self.book, int(max(self.st[S_NB], self.st[S_NA]))
                                      + len(flat) // 2 + 1)
                continue
            if k == 0 and x[X_ITEM] < len(items):
                cap *= 2  # one item needs more room than a whole output: grow it
                continue
            out = out[:k]
            out["order_id"] = 0
            out["ival"] = 0
            out["fval"] = 0.0
            yield out
        self._new_chunk()

    def chunks(self, paths: list[str | Path]) -> Iterator[np.ndarray]:
        plan = plan_files(paths, self.fmt, self.report)
        for path, fmt in plan:
            if fmt is None:
                continue
            exchange = EXCHANGE_OF[fmt]
            if self.ctx.exchange is None:
                self.ctx.exchange = exchange
            status = FileStatus(str(path))
            base = 0
            for lines in iter_line_blocks(path, status):
                self._block(fmt, lines, path.name, base)
                base += len(lines)
                if len(self.items) >= self.chunk_items:
                    yield from self._flush()
            self.report.files.append({"path": str(path), "format": fmt, "lines": status.lines})
            if status.truncated:
                self.report.truncated_files.append({
                    "path": str(path), "reason": status.reason, "lines_kept": status.lines,
                    "partial_line_dropped": status.partial_line_dropped})
        yield from self._flush()
        self._finish()

    def chunks_from_lines(self, fmt: str, lines: Iterable[bytes], name: str = "stream",
                          block_lines: int = 4096) -> Iterator[np.ndarray]:
        """The same, for in-memory lines of one format (e.g. the simulator's raw lines)."""
        if self.ctx.exchange is None:
            self.ctx.exchange = EXCHANGE_OF[fmt]
        block: list = []
        base = 0
        for line in lines:
            block.append(line)
            if len(block) >= block_lines:
                self._block(fmt, block, name, base)
                base += len(block)
                block = []
                if len(self.items) >= self.chunk_items:
                    yield from self._flush()
        if block:
            self._block(fmt, block, name, base)
        yield from self._flush()
        self._finish()

    def on_line(self, line: bytes, name: str = "live") -> np.ndarray:
        """One capture line (a live frame as the raw store records it: `<recv_ns> <frame>`)
        -> its events, at once. The live entry (paper trading): the same parse and kernel as
        `chunks`, state kept between calls, so feeding a capture line by line gives exactly
        the events of building it whole. The report: `current_report()`."""
        fmt = self.fmt
        if fmt not in EXCHANGE_OF:
            raise ValueError(f"a line-by-line builder needs a concrete format, not {fmt!r}")
        if self.ctx.exchange is None:
            self.ctx.exchange = EXCHANGE_OF[fmt]
        self._block(fmt, [line], name, self._lines_fed)
        self._lines_fed += 1
        return _concat(list(self._flush()))

    def current_report(self) -> EventReport:
        """The report of everything fed so far (the line-by-line entry's)."""
        self._finish()
        return self.report

    def _finish(self) -> None:
        r, ctx = self.report, self.ctx
        r.exchange, r.symbol = ctx.exchange, ctx.symbol
        r.messages = ctx.messages
        r.bad_lines = ctx.bad_lines
        r.out_of_range_lines = ctx.out_of_range
        r.bad_receive_times = ctx.bad_receive_times
        r.bad_line_examples = list(ctx.bad_examples)
        r.other_symbol = ctx.other_symbol
        r.control_messages = ctx.control
        r.non_book = dict(ctx.non_book)
        r.book = {name: int(v) for name, v in zip(COUNTER_NAMES, self.cnt, strict=True)
                  if name not in ("rows", "crossed_skipped", "empty_side_skipped")}
        r.events = {name: int(v) for name, v in zip(EVENT_COUNTER_NAMES, self.ecnt, strict=True)}
        tr = self.trade_report
        tr.exchange, tr.symbol = ctx.exchange, ctx.symbol
        r.trades = {k: v for k, v in tr.to_dict().items()
                    if k not in ("files", "lines", "non_trade_lines", "truncated", "empty_files",
                                 "truncated_files")}


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _with_span(events: np.ndarray, report: EventReport) -> None:
    if len(events):
        report.first_local_ts = int(events["local_ts"][0])
        report.last_local_ts = int(events["local_ts"][-1])


def build_event_stream(paths: list[str | Path] | str | Path, fmt: str = "auto",
                       tz: str | None = None) -> tuple[np.ndarray, EventReport]:
    """Captures (files in the order given, one stream) -> (events, report).

    `events` is an `EVENT_DTYPE` array in order of receipt; the report counts every line,
    book message, trade, skip and event (see the module docstring)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    builder = EventStreamBuilder(fmt=fmt, tz=tz)
    events = _concat(list(builder.chunks(list(paths))))
    _with_span(events, builder.report)
    return events, builder.report


def build_event_stream_from_lines(lines: Iterable[bytes | str], fmt: str = "bybit_raw",
                                  name: str = "stream") -> tuple[np.ndarray, EventReport]:
    """In-memory capture lines of one format (e.g. `<recv_ns> <frame>` from the simulator)."""
    builder = EventStreamBuilder(fmt=fmt)
    encoded = (ln.encode() if isinstance(ln, str) else ln for ln in lines)
    events = _concat(list(builder.chunks_from_lines(fmt, encoded, name)))
    _with_span(events, builder.report)
    return events, builder.report


def simulated_event_stream(config) -> tuple[np.ndarray, EventReport]:
    """The simulator's stream (`SimulatorConfig`, with its trades) as events."""
    from trade_pipeline.market.simulator import simulate

    return build_event_stream_from_lines(
        (b"%d %s" % (ns, frame.encode()) for ns, frame in simulate(config)), "bybit_raw",
        "simulator")


# ---- the engine's clocks ------------------------------------------------------------------------
def monotone_exchange_clock(events: np.ndarray, last: int | None = None) -> int:
    """In place: each event's `exch_ts` raised to the highest one before it in order of
    receipt (from `last`, the previous part's last `exch_ts`, when the stream comes in
    parts); returns how many events were raised.

    What the event engine runs on, in the backtest and live alike: order of receipt, both
    clocks non-decreasing. A live consumer cannot move an event before one it has already
    handled, so an event stamped before the previous one (a trade time before the book push
    received just before it) is seen by the exchange side at the previous event's time; the
    backtest does the same, so paper trading and the backtest see the same events.
    (`hftbacktest_order` instead splits such events for hftbacktest's files.)"""
    if len(events) == 0:
        return 0
    col = events["exch_ts"]
    fixed = np.maximum.accumulate(col)
    if last is not None:
        np.maximum(fixed, last, out=fixed)
    raised = int(np.count_nonzero(fixed != col))
    events["exch_ts"] = fixed
    return raised


# ---- files for hftbacktest ----------------------------------------------------------------------
def hftbacktest_order(events: np.ndarray) -> np.ndarray:
    """The stream as hftbacktest wants it: exchange-side events in `exch_ts` order and
    local-side events in `local_ts` order.

    An event seen out of `exch_ts` order (a trade time before the previous book push's time)
    is split in two, one copy per clock, as hftbacktest's own `correct_event_order` does; an
    already ordered stream comes back unchanged (same rows, both flags)."""
    if len(events) == 0:
        return events.copy()
    exch_order = np.argsort(events["exch_ts"], kind="stable")
    local_order = np.argsort(events["local_ts"], kind="stable")
    if (np.all(exch_order == np.arange(len(events)))
            and np.all(local_order == np.arange(len(events)))):
        return events.copy()
    return _merge_clocks(events, exch_order, local_order)


@nb.njit(cache=True)
def _merge_ordered(ev, exch, local, exch_order, local_order, out_ev, out_idx):
    """Merge the two orders; rows at the same place in both keep both flags."""
    n = len(ev)
    i = 0
    j = 0
    k = 0
    both = np.uint64(EXCH_EVENT | LOCAL_EVENT)
    only_exch = np.uint64(EXCH_EVENT)
    only_local = np.uint64(LOCAL_EVENT)
    clear = ~both
    while i < n or j < n:
        if i < n and j < n and exch_order[i] == local_order[j]:
            r = exch_order[i]
            out_ev[k] = (ev[r] & clear) | both
            out_idx[k] = r
            i += 1
            j += 1
        elif j >= n or (i < n and exch[exch_order[i]] <= exch[local_order[j]]
                        and not (exch[exch_order[i]] == exch[local_order[j]]
                                 and local[exch_order[i]] > local[local_order[j]])):
            r = exch_order[i]
            out_ev[k] = (ev[r] & clear) | only_exch
            out_idx[k] = r
            i += 1
        else:
            r = local_order[j]
            out_ev[k] = (ev[r] & clear) | only_local
            out_idx[k] = r
            j += 1
        k += 1
    return k


def _merge_clocks(events: np.ndarray, exch_order: np.ndarray, local_order: np.ndarray):
    n = len(events)
    out_ev = np.empty(2 * n, dtype=np.uint64)
    out_idx = np.empty(2 * n, dtype=np.int64)
    k = _merge_ordered(events["ev"], events["exch_ts"], events["local_ts"], exch_order,
                       local_order, out_ev, out_idx)
    out = events[out_idx[:k]]
    out["ev"] = out_ev[:k]
    return out


def write_event_npz(path: str | Path, events: np.ndarray, report: EventReport | dict | None = None,
                    for_hftbacktest: bool = True) -> Path:
    """Save events as `.npz` with the array under `data` (what hftbacktest loads), plus the
    report as JSON text under `report`. Written atomically (temp file + rename).

    for_hftbacktest: store `hftbacktest_order(events)` (exchange events in exch_ts order,
    local events in local_ts order); False stores the receipt-order stream as built."""
    import os

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: an event file must end in .npz")
    data = hftbacktest_order(events) if for_hftbacktest else events
    meta = report.to_dict() if isinstance(report, EventReport) else (report or {})
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez_compressed(tmp, data=data, report=np.array(json.dumps(meta)))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_event_npz(path: str | Path) -> tuple[np.ndarray, dict]:
    """(events, report dict) from a file written by `write_event_npz` (or any hftbacktest
    `.npz` with a `data` array: report {})."""
    with np.load(path, allow_pickle=False) as npz:
        data = npz["data"]
        report = json.loads(str(npz["report"])) if "report" in npz.files else {}
    if data.dtype != EVENT_DTYPE:
        data = data.astype(EVENT_DTYPE)
    return data, report


def event_type(events: np.ndarray) -> np.ndarray:
    """The event type of each row (DEPTH_EVENT, TRADE_EVENT, ...)."""
    return (events["ev"] & EVENT_TYPE_MASK).astype(np.int64)
