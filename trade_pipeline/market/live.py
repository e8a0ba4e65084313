"""Live entry point: one message in, the grid rows it completes out.

`LiveSampler` runs the same parser (`readers.parse_line`, the batch readers' handlers) and
the same kernel (`sampler.replay`) as the batch build; it just feeds one message at a time.
So a live session and a batch rebuild of its raw capture give identical rows.

Per message the hot path is: parse into one reused `MessageBuffer`, then one kernel call on
its `array` buffers (no numpy views, no per-message allocation besides the parse itself).

Rows come out when they are final: the row for grid time t is emitted when the first
message with a time of record > t arrives (or when the session closes), exactly as in batch.
`on_message_arrays` hands them out as the kernel's arrays (the paper-trading hot path);
`on_message` as dicts or tuples.
"""

import datetime as dt
from array import array

import numpy as np

from trade_pipeline.market.book import BookState
from trade_pipeline.market.messages import (
    NFIELDS,
    NULL_I64,
    MessageBuffer,
    extend_decimal_pairs,
)
from trade_pipeline.market.readers import (
    CCXT_MAX_GAP_S,
    EXCHANGE_OF,
    FORMATS,
    ParseContext,
    parse_line,
    parse_tz,
)
from trade_pipeline.market.sampler import Sampler, replay
from trade_pipeline.market.schema import DEPTH, SNAPSHOT_COLUMNS
from trade_pipeline.market.snapshots import parse_cadence

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(us: int) -> dt.datetime | None:
    return None if us == NULL_I64 else _EPOCH + dt.timedelta(microseconds=us)


class LiveSampler:
    """Per-message book + grid sampler.

    fmt: `bybit_raw` (a Bybit v5 WebSocket frame, optionally prefixed by `<recv_ns> ` as in
    the raw store), `bybit` (a format-2 line), `binance`, `ccxt`.
    """

    def __init__(
        self,
        fmt: str = "bybit_raw",
        symbol: str | None = None,
        cadence: str | int = "100ms",
        depth: int = DEPTH,
        initial_state: BookState | dict | None = None,
        tz: str | None = None,
        as_tuples: bool = False,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown live format {fmt!r}; choose from {', '.join(FORMATS)}")
        self.fmt = fmt
        self.sampler = Sampler(
            cadence_us=parse_cadence(cadence),
            depth=depth,
            max_gap_us=int(CCXT_MAX_GAP_S * 1e6),
            initial_state=initial_state,
            out_rows=1024,
        )
        self.exchange = self.sampler.exchange or EXCHANGE_OF[fmt]
        self.ctx = ParseContext(symbol=symbol or self.sampler.symbol, exchange=self.exchange,
                                tz=parse_tz(tz))
        self.sampler.exchange = self.exchange
        # rows as dicts keyed by SNAPSHOT_COLUMNS, or (cheaper) tuples in that column order
        self._convert = self._tuples if as_tuples else self._dicts
        self._cap = self.sampler._out_i.shape[0]
        self._buf = MessageBuffer()  # reused: reset before each message
        # compile / load the kernels for these buffer types now, not on the first message
        replay(self._buf.fields, self._buf.levels, 0, self.sampler.book, self.sampler.st,
               self.sampler.prm, self.sampler.cnt, self.sampler._out_i, self.sampler._out_f)
        extend_decimal_pairs(array("d"), [["1", "1"]])

    def on_message(self, raw: bytes | str, recv_ns: int | None = None) -> list:
        """Apply one message; returns the rows it completes (dicts keyed like SNAPSHOT_SCHEMA,
        or tuples in SNAPSHOT_COLUMNS order with as_tuples=True).

        Bad input never raises: it is counted (see `report()`) and yields no rows.
        """
        buf = self._buf
        buf.reset()
        if not parse_line(self.fmt, raw, buf, self.ctx, recv_ns):
            return []
        self.sampler.symbol = self.ctx.symbol
        blocks = self.sampler.feed_flat(buf.fields, buf.levels, self._convert)
        if not blocks:
            return []
        return blocks[0] if len(blocks) == 1 else [row for b in blocks for row in b]

    def on_message_arrays(self, raw: bytes | str, recv_ns: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray] | None:
        """The fast entry (paper trading): the rows this message completes as arrays, or None.

        Returns (out_i, out_f): out_i int64 (n, 4) = timestamp us, receive time us (NULL_I64 =
        none), update id, session id; out_f float64 (n, 40) in BOOK_COLUMNS order (NaN price =
        missing level, its size 0). Usually views of the sampler's output buffer, valid only
        until the next call (copy what must outlive it). Same parser and kernel as
        `on_message`; it just skips building Python row objects.
        """
        buf = self._buf
        fields = buf.fields
        levels = buf.levels
        del fields[:]  # buf.reset(), inlined: this is the hot path
        del levels[:]
        ctx = self.ctx
        if not parse_line(self.fmt, raw, buf, ctx, recv_ns):
            return None
        smp = self.sampler
        smp.symbol = ctx.symbol
        smp.messages_fed += len(fields) // NFIELDS
        i, r = replay(fields, levels, 0, smp.book, smp.st, smp.prm, smp.cnt, smp._out_i,
                      smp._out_f)
        if i * NFIELDS == len(fields):
            return self._block(smp._out_i[:r], smp._out_f[:r]) if r > 0 else None
        # rare: a full output buffer, a long span of grid times, a book to grow, or several
        # messages (Binance resync)
        blocks = smp.feed_flat(fields, levels, self._block, started=(i, r))
        if not blocks:
            return None
        if len(blocks) == 1:
            return blocks[0]
        return (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))

    def close_arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`close()` as arrays (see `on_message_arrays`), or None when no row is pending."""
        blocks = list(self.sampler.close())
        if not blocks:
            return None
        return (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))

    def _block(self, out_i: np.ndarray, out_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The kernel stops early only when its output buffer is full; then another block may
        # overwrite the buffer, so only a full block is copied.
        if out_i.shape[0] >= self._cap:
            return out_i.copy(), out_f.copy()
        return out_i, out_f

    def close(self) -> list[dict]:
        """End of stream: the open session's last grid rows (the state stays resumable)."""
        rows: list[dict] = []
        for out_i, out_f in self.sampler.close():
            rows.extend(self._convert(out_i, out_f))
        return rows

    def state(self) -> BookState:
        return self.sampler.state()

    def report(self) -> dict:
        ctx = self.ctx
        return {
            "messages": ctx.messages,
            "bad_lines": ctx.bad_lines,
            "out_of_range_lines": ctx.out_of_range,
            "bad_receive_times": ctx.bad_receive_times,
            "other_symbol": ctx.other_symbol,
            "control_messages": ctx.control,
            "non_book": dict(ctx.non_book),
            **self.sampler.counters(),
        }

    def _tuples(self, out_i: np.ndarray, out_f: np.ndarray) -> list[tuple]:
        exchange, symbol = self.exchange, self.ctx.symbol
        return [
            (_ts(t), exchange, symbol, *[None if v != v else v for v in vals],
             None if uid == NULL_I64 else uid, _ts(recv), sid)
            for (t, recv, uid, sid), vals in zip(out_i.tolist(), out_f.tolist(), strict=True)
        ]

    def _dicts(self, out_i: np.ndarray, out_f: np.ndarray) -> list[dict]:
        rows = []
        exchange, symbol = self.exchange, self.ctx.symbol
        for (t, recv, uid, sid), vals in zip(out_i.tolist(), out_f.tolist(), strict=True):
            values = [_ts(t), exchange, symbol, *[None if v != v else v for v in vals],
                      None if uid == NULL_I64 else uid, _ts(recv), sid]
            rows.append(dict(zip(SNAPSHOT_COLUMNS, values, strict=True)))
        return rows
