"""Grid sampler: the one implementation of the canonical snapshot stream's
sampling rules (docs/DATA_FORMATS.md, rules 1-8).

`replay` is a numba kernel that applies normalized messages (see `messages.py`) to the book,
checks continuity (Bybit u+1, Binance spot/USD-M sync, time breaks for id-less sources),
opens and closes sessions and emits rows on the epoch-aligned grid (or one per message with
`cadence = event`). `Sampler` holds its state between calls; batch feeds it chunks of many
thousand messages, live feeds it one message at a time: same code, different window.

Rules, as implemented:
- The row at grid time t is the book after every message with time of record <= t. So on a
  message with time T the kernel first emits the pending grid times g < T with the current
  book, then applies the message. A session's last grid time (<= its last message time) is
  emitted when the session closes (snapshot, gap, or end of input via `close()`).
- Rows cover grid times from the session's first message time to its last one, inclusive.
- Clock faults (docs/DATA_FORMATS.md rule 7): a time of record earlier than the previous message's, or
  one that advanced more than `MAX_CLOCK_LEAD_US` (5 s) beyond the receive clock's advance
  since the previous message, is applied in sequence at the previous time of record plus the
  receive clock's advance (never earlier than the previous time), counted `clock_faults`
  (the backward ones also `time_backwards`). Grid times stay monotone and one bad value
  neither creates nor removes rows. The forward check compares with the later of the
  previous message's raw and applied times, so one outlier makes one fault, not a cascade.
- Messages that are skipped without touching the book (duplicates, deltas before the first
  snapshot, Binance diffs dropped while syncing) do not move the clock.
- session_id = the start time (us) of the session's first message, bumped to previous id + 1
  if needed, so ids are unique, increasing and the same when a day is processed alone.
- A grid time whose book has an empty side, or bid >= ask, yields no row (counted).
The kernel can stop mid-way when its output buffer is full and resume exactly where it was:
the decision for a message is pure, counters and book changes happen after its emission.
"""

from collections.abc import Iterator

import numba as nb
import numpy as np

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.market.book import (
    ASK_KEYS,
    ASK_SIZES,
    BID_KEYS,
    BID_SIZES,
    BookState,
    grow_book,
    new_book,
    set_level,
)
from trade_pipeline.market.messages import (
    F_KIND,
    F_NA,
    F_NB,
    F_PU,
    F_RECV,
    F_RULE,
    F_T,
    F_UFIRST,
    F_ULAST,
    K_DELTA,
    K_FULL,
    K_REPLAY,
    K_REST,
    K_SNAPSHOT,
    NFIELDS,
    NULL_I64,
    R_BYBIT,
    R_SPOT,
    R_USDM,
)
from trade_pipeline.market.schema import DEPTH

# ---- int state ---------------------------------------------------------------------------
S_VALID = 0
S_PENDING = 1
S_EVER = 2
S_LAST_U = 3
S_LAST_T = 4
S_NEXT_G = 5
S_SID = 6
S_LAST_RECV = 7
S_LID = 8
S_NB = 9
S_NA = 10
S_APPLIED_T = 11  # time of the last message applied: where an open session's rows end
S_RAW_T = 12  # raw (uncorrected) time of record of the clock's reference message
S_CLOCK_RECV = 13  # receive time of the clock's reference message (NULL_I64: none)
NSTATE = 14

# Grid budget (see `Sampler`): grid times allowed = floor + per_message * messages fed.
GRID_FLOOR = 1_000_000
GRID_PER_MESSAGE = 1_000

# Rule 7: a time of record may run ahead of the receive clock by at most this much.
MAX_CLOCK_LEAD_US = 5_000_000

# ---- parameters --------------------------------------------------------------------------
P_CADENCE = 0  # grid step in us; 0 = event cadence
P_DEPTH = 1  # levels emitted (<= DEPTH); the rest: null price, size 0
P_MAX_GAP = 2  # R_NONE sources: a time step above this (us) breaks continuity; 0 = never
NPARAMS = 3

# ---- counters ----------------------------------------------------------------------------
C_APPLIED = 0  # messages applied to the book
C_SESSIONS = 1
C_GAPS = 2  # update-id gaps (book invalid until the next snapshot)
C_DUPLICATES = 3
C_BEFORE_SNAPSHOT = 4  # deltas before any snapshot
C_AFTER_GAP = 5  # deltas skipped while the book is invalid after a gap
C_STALE = 6  # Binance diffs dropped while syncing (u <= lastUpdateId)
C_BACKWARDS = 7  # time of record lower than the previous one (clamped)
C_CROSSED = 8  # grid times skipped: bid >= ask
C_EMPTY_SIDE = 9  # grid times skipped: a side empty
C_ROWS = 10
C_TIME_BREAKS = 11  # R_NONE sources: continuity broken by silence > max gap
C_RESYNCS = 12  # Binance REST snapshots loaded
C_SNAPSHOTS = 13  # exchange snapshots (incl. Bybit u == 1) and full books applied
C_REPLAYED = 14  # buffered Binance diffs applied after a REST snapshot (counted once as read)
C_BAD_LEVELS = 15  # levels ignored: NaN/inf, price <= 0 or size < 0
C_CLOCK_FAULTS = 16  # rule 7: applied at the previous time + the receive clock's advance
NCOUNTERS = 17
COUNTER_NAMES = (
    "applied",
    "sessions",
    "gaps",
    "duplicates",
    "deltas_before_snapshot",
    "skipped_after_gap",
    "stale_before_sync",
    "time_backwards",
    "crossed_skipped",
    "empty_side_skipped",
    "rows",
    "time_breaks",
    "resyncs",
    "snapshots",
    "replayed",
    "bad_levels",
    "clock_faults",
)

# ---- actions (decided purely from state + message) ---------------------------------------
A_DUP = 0
A_NOBOOK = 1
A_STALE = 2
A_GAP = 3
A_APPLY = 4
A_START = 5
A_SYNC = 6
A_REST = 7
A_FULL = 8
A_BREAK = 9  # time break: close session, book invalid (this message is not applied)

# Output int columns.
O_T, O_RECV, O_UID, O_SID = 0, 1, 2, 3


@nb.njit(cache=True, nogil=True)
def _decide(st, prm, kind, rule, t, u_first, u_last, pu):
    valid = st[S_VALID] == 1
    if kind == K_REST:
        return A_REST
    if kind == K_SNAPSHOT:
        # a snapshot older than (or equal to) what was applied is a replay, e.g. two
        # overlapping captures of one stream: skip it as a duplicate
        if valid and rule == R_BYBIT and u_last != 1 and u_last <= st[S_LAST_U]:
            return A_DUP
        return A_START
    if kind == K_FULL:
        if valid and prm[P_MAX_GAP] > 0 and t - st[S_LAST_T] > prm[P_MAX_GAP]:
            return A_START  # a full book after silence starts a fresh session
        return A_FULL if valid else A_START
    # deltas
    if rule == R_BYBIT:
        if u_last == 1:
            return A_START  # service restart: the message is a snapshot
        if not valid:
            return A_NOBOOK
        if u_last <= st[S_LAST_U]:
            return A_DUP  # already applied (repeat or overlapping capture)
        if u_last == st[S_LAST_U] + 1:
            return A_APPLY
        return A_GAP
    if rule in (R_SPOT, R_USDM):
        if st[S_PENDING] == 1:
            lid = st[S_LID]
            if rule == R_SPOT:
                if u_last <= lid:
                    return A_STALE
                if u_first <= lid + 1:
                    return A_SYNC
                return A_GAP
            if u_last < lid:
                return A_STALE
            if u_first <= lid:
                return A_SYNC
            return A_GAP
        if not valid:
            return A_NOBOOK
        if u_last <= st[S_LAST_U]:
            return A_DUP
        if rule == R_SPOT:
            if u_first == st[S_LAST_U] + 1:
                return A_APPLY
            return A_GAP
        if pu == st[S_LAST_U]:
            return A_APPLY
        return A_GAP
    # R_NONE deltas: no ids, continuity only by time
    if not valid:
        return A_NOBOOK
    if prm[P_MAX_GAP] > 0 and t - st[S_LAST_T] > prm[P_MAX_GAP]:
        return A_BREAK
    return A_APPLY


@nb.njit(cache=True, nogil=True)
def _emit_row(g, book, st, prm, cnt, out_i, out_f, r):
    """Write the row for grid time g at out[r] (or count the skip); returns rows written."""
    nbid = st[S_NB]
    nask = st[S_NA]
    if nbid == 0 or nask == 0:
        cnt[C_EMPTY_SIDE] += 1
        return 0
    if -book[BID_KEYS, 0] >= book[ASK_KEYS, 0]:
        cnt[C_CROSSED] += 1
        return 0
    out_i[r, O_T] = g
    out_i[r, O_RECV] = st[S_LAST_RECV]
    out_i[r, O_UID] = st[S_LAST_U]
    out_i[r, O_SID] = st[S_SID]
    # out_f columns follow schema.BOOK_COLUMNS: bid p/q pairs by level, then ask p/q pairs
    depth = prm[P_DEPTH]
    for k in range(DEPTH):
        if k < depth and k < nbid:
            out_f[r, 2 * k] = -book[BID_KEYS, k]
            out_f[r, 2 * k + 1] = book[BID_SIZES, k]
        else:
            out_f[r, 2 * k] = np.nan
            out_f[r, 2 * k + 1] = 0.0
        if k < depth and k < nask:
            out_f[r, 2 * DEPTH + 2 * k] = book[ASK_KEYS, k]
            out_f[r, 2 * DEPTH + 2 * k + 1] = book[ASK_SIZES, k]
        else:
            out_f[r, 2 * DEPTH + 2 * k] = np.nan
            out_f[r, 2 * DEPTH + 2 * k + 1] = 0.0
    cnt[C_ROWS] += 1
    return 1


@nb.njit(cache=True, nogil=True)
def _emit_until(limit, inclusive, book, st, prm, cnt, out_i, out_f, r):
    """Emit grid rows from S_NEXT_G up to limit; returns (rows written so far, finished).

    Stops unfinished when the output is full, and also after `cap` grid times visited in
    this call (rows or skipped ones: a crossed book over a long span writes no row), so the
    caller regains control regularly and can check its grid budget."""
    step = prm[P_CADENCE]
    cap = out_i.shape[0]
    g = st[S_NEXT_G]
    visited = 0
    while g < limit or (inclusive and g == limit):
        if r >= cap or visited >= cap:
            st[S_NEXT_G] = g
            return r, False
        r += _emit_row(g, book, st, prm, cnt, out_i, out_f, r)
        visited += 1
        g += step
    st[S_NEXT_G] = g
    return r, True


@nb.njit(cache=True, nogil=True)
def _good_level(price, size):
    # a price must be finite and > 0, a size finite and >= 0 (0 deletes); NaN fails both
    return price > 0.0 and price < np.inf and size >= 0.0 and size < np.inf


@nb.njit(cache=True, nogil=True)
def _apply_levels(book, st, cnt, levels, off, nbids, nasks):
    """Apply a message's levels (flat: price, size, ...; level j at 2j); unusable levels
    (NaN, inf, price <= 0, size < 0) are counted."""
    nb_ = st[S_NB]
    for j in range(2 * off, 2 * (off + nbids), 2):
        if _good_level(levels[j], levels[j + 1]):
            nb_ = set_level(book[BID_KEYS], book[BID_SIZES], nb_, -levels[j], levels[j + 1])
        else:
            cnt[C_BAD_LEVELS] += 1
    st[S_NB] = nb_
    na_ = st[S_NA]
    for j in range(2 * (off + nbids), 2 * (off + nbids + nasks), 2):
        if _good_level(levels[j], levels[j + 1]):
            na_ = set_level(book[ASK_KEYS], book[ASK_SIZES], na_, levels[j], levels[j + 1])
        else:
            cnt[C_BAD_LEVELS] += 1
    st[S_NA] = na_


@nb.njit(cache=True, nogil=True)
def _close_session(book, st, prm, cnt, out_i, out_f, r):
    """Emit the open session's remaining grid rows up to its last message time (inclusive)."""
    if st[S_VALID] == 1 and prm[P_CADENCE] > 0:
        return _emit_until(st[S_APPLIED_T], True, book, st, prm, cnt, out_i, out_f, r)
    return r, True


@nb.njit(cache=True, nogil=True)
def _clock(st, kind, replayed, t, recv):
    """Rule 7: the time a message is applied at; returns (time, clock fault, backwards)."""
    prev = st[S_LAST_T]
    if kind == K_REST or prev == NULL_I64:
        return t, False, False
    if replayed:  # a re-fed Binance diff is older by construction: no fault
        return max(t, prev), False, False
    advance = NULL_I64
    if recv != NULL_I64 and st[S_CLOCK_RECV] != NULL_I64:
        advance = recv - st[S_CLOCK_RECV]
    step = max(advance, 0) if advance != NULL_I64 else 0
    if t < prev:
        return prev + step, True, True
    if advance != NULL_I64 and t - max(prev, st[S_RAW_T]) > advance + MAX_CLOCK_LEAD_US:
        return prev + step, True, False
    return t, False, False


@nb.njit(cache=True, nogil=True, inline="always")
def decide_message(fields, m, st, prm):
    """Rules 7 (clock) and continuity for the message at fields[m:]; pure (no state change).

    Returns (action, t, fault, backwards, quiet, replayed): t is the time the message is
    applied at, quiet means skipped without touching the book (no clock move, no fault
    counted). Shared by `replay` and the event-stream builder (`event_stream.build_events`),
    so both take the same decision on every message."""
    kind = fields[m + F_KIND]
    replayed = kind == K_REPLAY
    if replayed:
        kind = K_DELTA
    t, fault, backwards = _clock(st, kind, replayed, fields[m + F_T], fields[m + F_RECV])
    action = _decide(st, prm, kind, fields[m + F_RULE], t, fields[m + F_UFIRST],
                     fields[m + F_ULAST], fields[m + F_PU])
    quiet = action in (A_DUP, A_STALE) or (action == A_NOBOOK and st[S_EVER] == 0)
    return action, t, fault, backwards, quiet, replayed


@nb.njit(cache=True, nogil=True, inline="always")
def commit_message(fields, m, levels, off, action, t, fault, backwards, quiet, replayed, book,
                   st, prm, cnt):
    """Counters, book and state for a message `decide_message` decided (no emission). Shared
    by `replay` and the event-stream builder."""
    if fault and not quiet:
        cnt[C_CLOCK_FAULTS] += 1
        if backwards:
            cnt[C_BACKWARDS] += 1
    nbids = fields[m + F_NB]
    nasks = fields[m + F_NA]
    if replayed and action in (A_DUP, A_NOBOOK, A_STALE):
        pass  # already counted when the diff was first read
    elif action == A_DUP:
        cnt[C_DUPLICATES] += 1
    elif action == A_NOBOOK:
        if st[S_EVER] == 1:
            cnt[C_AFTER_GAP] += 1
        else:
            cnt[C_BEFORE_SNAPSHOT] += 1
    elif action == A_STALE:
        cnt[C_STALE] += 1
    elif action in (A_GAP, A_BREAK):
        if action == A_GAP:
            cnt[C_GAPS] += 1
        else:
            cnt[C_TIME_BREAKS] += 1
        st[S_VALID] = 0
        st[S_PENDING] = 0
        if not replayed:
            cnt[C_AFTER_GAP] += 1  # the message that revealed the break is not applied
    elif action == A_REST:
        cnt[C_RESYNCS] += 1
        st[S_VALID] = 0
        st[S_PENDING] = 1
        st[S_EVER] = 1
        st[S_LID] = fields[m + F_ULAST]
        st[S_NB] = 0
        st[S_NA] = 0
        _apply_levels(book, st, cnt, levels, off, nbids, nasks)
    else:
        if action in (A_START, A_FULL):
            cnt[C_SNAPSHOTS] += 1
            st[S_NB] = 0
            st[S_NA] = 0
        if action in (A_START, A_SYNC):
            cnt[C_SESSIONS] += 1
            sid = t
            if st[S_SID] != NULL_I64 and sid <= st[S_SID]:
                sid = st[S_SID] + 1
            st[S_SID] = sid
            st[S_VALID] = 1
            st[S_PENDING] = 0
            st[S_EVER] = 1
            step = prm[P_CADENCE]
            if step > 0:
                # never re-emit a grid time an earlier session already covered
                st[S_NEXT_G] = max(((t + step - 1) // step) * step, st[S_NEXT_G])
        _apply_levels(book, st, cnt, levels, off, nbids, nasks)
        if replayed:
            cnt[C_REPLAYED] += 1
        else:
            cnt[C_APPLIED] += 1
        st[S_LAST_U] = fields[m + F_ULAST]
        st[S_LAST_RECV] = fields[m + F_RECV]
        st[S_APPLIED_T] = t
    if action != A_REST and not quiet:
        st[S_LAST_T] = t
        st[S_RAW_T] = fields[m + F_T]
        st[S_CLOCK_RECV] = fields[m + F_RECV]


@nb.njit(cache=True, nogil=True)
def replay(fields, levels, i0, book, st, prm, cnt, out_i, out_f):
    """Process messages i0.. of a flat buffer; returns (next message index, rows written).

    fields: int64, NFIELDS per message (`messages.py`); levels: float64, price and size per
    level, each message's bids then asks, in message order (a message's first level is the
    sum of the level counts before it). Both may be numpy arrays or the `array` buffers of a
    `MessageBuffer` (the live path: no numpy view per message).
    Stops early (returning i < n) when out_i/out_f are full; call again with i after taking
    the rows. Returns rows = -1 (nothing done) when the book has no room for every level of
    the messages: grow it (`book.grow_book`) and call again.
    """
    n = len(fields) // NFIELDS
    if max(st[S_NB], st[S_NA]) + len(levels) // 2 + 1 > book.shape[1]:
        return i0, -1
    cap = out_i.shape[0]
    step = prm[P_CADENCE]
    r = 0
    i = i0
    off = 0
    for k in range(i0):
        off += fields[k * NFIELDS + F_NB] + fields[k * NFIELDS + F_NA]
    while i < n:
        m = i * NFIELDS
        action, t, fault, backwards, quiet, replayed = decide_message(fields, m, st, prm)

        # 1. emission owed before this message (may stop here; nothing committed yet)
        if action in (A_APPLY, A_FULL):
            if step > 0:
                r, done = _emit_until(t, False, book, st, prm, cnt, out_i, out_f, r)
                if not done:
                    return i, r
            elif r >= cap:
                return i, r
        elif action in (A_START, A_SYNC, A_GAP, A_REST, A_BREAK):
            r, done = _close_session(book, st, prm, cnt, out_i, out_f, r)
            if not done:
                return i, r
            if step == 0 and (action in (A_START, A_SYNC)) and r >= cap:
                return i, r

        # 2. commit: counters, book, state
        commit_message(fields, m, levels, off, action, t, fault, backwards, quiet, replayed,
                       book, st, prm, cnt)
        if step == 0 and action in (A_APPLY, A_START, A_SYNC, A_FULL):
            r += _emit_row(t, book, st, prm, cnt, out_i, out_f, r)
        off += fields[m + F_NB] + fields[m + F_NA]
        i += 1
    return i, r


def fresh_state() -> np.ndarray:
    st = np.zeros(NSTATE, dtype=np.int64)
    for k in (S_LAST_U, S_LAST_T, S_NEXT_G, S_SID, S_LAST_RECV, S_LID, S_APPLIED_T, S_RAW_T,
              S_CLOCK_RECV):
        st[k] = NULL_I64
    return st


def _opt(v: int) -> int | None:
    return None if int(v) == NULL_I64 else int(v)


def _nul(v: int | None) -> int:
    return NULL_I64 if v is None else int(v)


class GridBudgetError(TradePipelineError, ValueError):
    """The grid would hold far more rows than the input has messages (see `Sampler`)."""


class Sampler:
    """Book + grid state across calls; `feed(msgs, levels)` yields (out_i, out_f) row blocks.

    cadence_us = 0 means event cadence. max_gap_us breaks id-less (ccxt) streams on silence.

    Grid budget: the grid times visited (rows written plus crossed / empty-side skips) may
    not exceed `grid_floor + grid_per_message * messages fed`. Past it, `GridBudgetError`:
    a cadence far too fine for the data (1 us over a few hundred messages) or a span no clock
    check can catch (both clocks jumping together) is refused instead of filling the disk.
    Memory never depends on it: rows leave in blocks of `out_rows`.
    """

    def __init__(
        self,
        cadence_us: int = 100_000,
        depth: int = DEPTH,
        max_gap_us: int = 0,
        initial_state: BookState | dict | None = None,
        out_rows: int = 65536,
        grid_floor: int = GRID_FLOOR,
        grid_per_message: int = GRID_PER_MESSAGE,
    ) -> None:
        if cadence_us < 0:
            raise ValueError(f"cadence must be >= 0 us (0 = event), got {cadence_us}")
        if not 1 <= depth <= DEPTH:
            raise ValueError(f"depth must be between 1 and {DEPTH}, got {depth}")
        self.prm = np.array([cadence_us, depth, max_gap_us], dtype=np.int64)
        self.cnt = np.zeros(NCOUNTERS, dtype=np.int64)
        self.st = fresh_state()
        self.book = new_book()
        self.exchange: str | None = None
        self.symbol: str | None = None
        self.grid_floor = grid_floor
        self.grid_per_message = grid_per_message
        self.messages_fed = 0
        self._out_i = np.empty((out_rows, 4), dtype=np.int64)
        self._out_f = np.empty((out_rows, 4 * DEPTH), dtype=np.float64)
        if initial_state is not None:
            self.load_state(initial_state)

    # ---- feeding ---------------------------------------------------------------------------
    def feed(self, msgs: np.ndarray, levels: np.ndarray,
             convert=None) -> list:
        """Apply messages (msgs n x NFIELDS, levels m x 2); returns the row blocks emitted, in
        order (`iter_feed` streams them instead: flat memory for any span).

        A block is (out_i, out_f) copies, or `convert(out_i, out_f)` when given (called on the
        reused output buffers before they are overwritten: no copy). out_f columns follow
        schema.BOOK_COLUMNS (NaN price = missing level).
        """
        return list(self.iter_feed(msgs, levels, convert))

    def iter_feed(self, msgs: np.ndarray, levels: np.ndarray, convert=None) -> Iterator:
        """`feed`, yielding each block as soon as the kernel fills it."""
        # the kernel reads flat buffers (reshape: views, no copy)
        return self.iter_feed_flat(msgs.reshape(-1), levels.reshape(-1), convert)

    def feed_flat(self, fields, levels, convert=None,
                  started: tuple[int, int] | None = None) -> list:
        """`feed` on flat buffers (numpy arrays or a MessageBuffer's `array`s, see `replay`).

        started: the (i, rows) a caller's own first `replay` call on these buffers returned
        (the live fast path calls the kernel directly, having added the messages to
        `messages_fed` itself, and comes here only for the rare rest).
        """
        return list(self.iter_feed_flat(fields, levels, convert, started))

    def iter_feed_flat(self, fields, levels, convert=None,
                       started: tuple[int, int] | None = None) -> Iterator:
        n = len(fields) // NFIELDS
        if started is None:
            self.messages_fed += n
            started = (0, 0)
        i, r = started
        while True:
            if r < 0:
                self.grow(len(levels) // 2)
            else:
                if r > 0:
                    if convert is None:
                        yield self._out_i[:r].copy(), self._out_f[:r].copy()
                    else:
                        yield convert(self._out_i[:r], self._out_f[:r])
                if i >= n:
                    return
                self.check_budget()
            i, r = replay(fields, levels, i, self.book, self.st, self.prm, self.cnt,
                          self._out_i, self._out_f)

    def grid_visited(self) -> int:
        c = self.cnt
        return int(c[C_ROWS] + c[C_CROSSED] + c[C_EMPTY_SIDE])

    def check_budget(self) -> None:
        visited = self.grid_visited()
        limit = self.grid_floor + self.grid_per_message * self.messages_fed
        if visited > limit:
            step = int(self.prm[P_CADENCE])
            raise GridBudgetError(
                f"the {step} us grid already holds {visited:,} grid times for "
                f"{self.messages_fed:,} messages (limit {limit:,}): a cadence far too fine for "
                "this data, or times of record spanning far more than the data covers; use a "
                "coarser --cadence (or 'event'), or check the input's clocks")

    def grow(self, n_levels: int) -> None:
        """Make room in the book for n_levels more levels on a side (kernel asked: rows -1)."""
        st = self.st
        self.book = grow_book(self.book, int(max(st[S_NB], st[S_NA])) + n_levels + 1)

    def close(self):
        """End of input: emit the open session's last grid rows (the session stays resumable)."""
        if self.prm[P_CADENCE] == 0 or self.st[S_VALID] != 1:
            return
        done = False
        while not done:
            self.check_budget()
            r, done = _close_session(self.book, self.st, self.prm, self.cnt, self._out_i,
                                     self._out_f, 0)
            if r:
                yield self._out_i[:r].copy(), self._out_f[:r].copy()

    def counters(self) -> dict[str, int]:
        return {name: int(v) for name, v in zip(COUNTER_NAMES, self.cnt, strict=True)}

    # ---- checkpoint ------------------------------------------------------------------------
    def state(self) -> BookState:
        st, book = self.st, self.book
        nbid, nask = int(st[S_NB]), int(st[S_NA])
        return BookState(
            exchange=self.exchange,
            symbol=self.symbol,
            valid=bool(st[S_VALID]),
            pending_sync=bool(st[S_PENDING]),
            ever_synced=bool(st[S_EVER]),
            last_update_id=_opt(st[S_LAST_U]),
            rest_update_id=_opt(st[S_LID]),
            last_time_us=_opt(st[S_LAST_T]),
            last_applied_us=_opt(st[S_APPLIED_T]),
            last_recv_us=_opt(st[S_LAST_RECV]),
            last_raw_time_us=_opt(st[S_RAW_T]),
            clock_recv_us=_opt(st[S_CLOCK_RECV]),
            next_grid_us=_opt(st[S_NEXT_G]),
            session_id=_opt(st[S_SID]),
            bids=[[float(-book[BID_KEYS, k]), float(book[BID_SIZES, k])] for k in range(nbid)],
            asks=[[float(book[ASK_KEYS, k]), float(book[ASK_SIZES, k])] for k in range(nask)],
        )

    def load_state(self, state: BookState | dict) -> None:
        if isinstance(state, dict):
            state = BookState.from_dict(state)
        st = fresh_state()
        st[S_VALID] = int(state.valid)
        st[S_PENDING] = int(state.pending_sync)
        st[S_EVER] = int(state.ever_synced)
        st[S_LAST_U] = _nul(state.last_update_id)
        st[S_LID] = _nul(state.rest_update_id)
        st[S_LAST_T] = _nul(state.last_time_us)
        st[S_APPLIED_T] = _nul(state.last_applied_us)
        st[S_LAST_RECV] = _nul(state.last_recv_us)
        st[S_RAW_T] = _nul(state.last_raw_time_us)
        st[S_CLOCK_RECV] = _nul(state.clock_recv_us)
        st[S_NEXT_G] = _nul(state.next_grid_us)
        st[S_SID] = _nul(state.session_id)
        book = new_book(max(len(state.bids), len(state.asks)) + 16)
        for k, (p, s) in enumerate(state.bids):
            book[BID_KEYS, k] = -float(p)
            book[BID_SIZES, k] = float(s)
        for k, (p, s) in enumerate(state.asks):
            book[ASK_KEYS, k] = float(p)
            book[ASK_SIZES, k] = float(s)
        st[S_NB] = len(state.bids)
        st[S_NA] = len(state.asks)
        if state.valid and self.prm[P_CADENCE] > 0 and state.next_grid_us is None:
            raise ValueError("book state is valid but has no next_grid_us")
        self.st, self.book = st, book
        self.exchange, self.symbol = state.exchange, state.symbol
