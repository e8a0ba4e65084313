"""The normalized book message: what every reader produces and the book kernel consumes.

A message is one row of ten int64 fields plus its price levels. Readers append into a
`MessageBuffer` (flat `array` objects, no per-message Python objects), and `arrays()` hands
the kernel two numpy views: `msgs` (n x NFIELDS int64) and `levels` (m x 2 float64, price and
size; each message's bids first, then its asks).

Times are int64 microseconds since the epoch (UTC). `NULL_TIME` marks a missing receive time.
"""

from array import array
from itertools import chain

import numba as nb
import numpy as np
import orjson

NULL_I64 = np.iinfo(np.int64).min  # sentinel for a missing int64 (receive time, update id)
NULL_TIME = NULL_I64

# Plausible ranges (docs/DATA_FORMATS.md rule 8): a time of record outside [2009, 2100) or an id outside
# int64 (or negative) makes the line a bad line.
MIN_TIME_US = 1_230_768_000_000_000  # 2009-01-01T00:00:00Z
MAX_TIME_US = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z
MAX_ID = 2**63 - 1


def time_in_range(t_us: int) -> bool:
    return MIN_TIME_US <= t_us < MAX_TIME_US


def id_in_range(u) -> bool:
    """An exchange update id: a non-negative int64 (NULL_I64 marks 'none' and passes)."""
    return u == NULL_I64 or 0 <= u <= MAX_ID


def has_bool(values) -> bool:
    """True when a flat sequence holds a JSON boolean (`true` would become 1.0, `false` 0.0:
    a boolean is never a price or a size)."""
    return bool in set(map(type, values))


# Field indices of one message row.
F_T = 0  # time of record (us): Bybit ts, Binance E (spot) / T (futures), ccxt timestamp
F_RECV = 1  # local receive time (us) or NULL_TIME
F_KIND = 2  # K_* below
F_RULE = 3  # R_* below: which sequencing rule checks continuity
F_UFIRST = 4  # first update id in the message (Binance U); = F_ULAST elsewhere
F_ULAST = 5  # last update id (Bybit u, Binance u, REST lastUpdateId); NULL_I64 if none
F_PU = 6  # previous update id (Binance USD-M pu) or NULL_I64
F_NB = 7  # number of bid levels
F_NA = 8  # number of ask levels
F_OFF = 9  # offset of the first level in `levels` (filled by `arrays()`)
NFIELDS = 10

# Message kinds.
K_DELTA = 0  # set/delete levels (size 0 deletes)
K_SNAPSHOT = 1  # exchange snapshot with a time of record: replace book, start a session
K_FULL = 2  # full book inside a running stream (ccxt): replace book, keep the session
K_REST = 3  # Binance REST depth snapshot: load book, wait for the first syncing diff
K_REPLAY = 4  # a diff that arrived before a REST snapshot, re-fed after it (Binance sync
#               procedure: buffer diffs, then apply those after lastUpdateId); not re-counted

# Sequencing rules.
R_BYBIT = 0  # u rises by exactly 1; u == 1 is a restart (snapshot)
R_SPOT = 1  # Binance spot: first U <= lid+1 <= u, then U == prev u + 1
R_USDM = 2  # Binance USD-M: first U <= lid <= u, then pu == prev u
R_NONE = 3  # no update ids (ccxt): continuity only broken by a time break


_POW10 = np.array([10.0**k for k in range(16)])  # exact doubles


@nb.njit(cache=True, nogil=True)
def _decimal(text, i, n):
    """Parse `"-?digits[.digits]"` (quoted) at text[i]; returns (value, next index) or
    (0.0, -1) when it is anything else (exponent, spaces, more than 15 digits, escapes...).

    A token of at most 15 digits is an integer m < 2**53 over 10**k (k <= 15), both exact
    doubles, so one IEEE division gives the correctly rounded value: what float() returns.
    """
    if i >= n or text[i] != 34:  # '"'
        return 0.0, -1
    i += 1
    neg = False
    if i < n and text[i] == 45:  # '-'
        neg = True
        i += 1
    m = 0
    digits = 0
    frac = 0
    dot = False
    while i < n and text[i] != 34:
        c = text[i]
        if 48 <= c <= 57:
            m = m * 10 + (c - 48)
            digits += 1
            if dot:
                frac += 1
        elif c == 46 and not dot:  # '.'
            dot = True
        else:
            return 0.0, -1
        i += 1
    if i >= n or digits == 0 or digits > 15:
        return 0.0, -1
    v = m / _POW10[frac]
    return (-v if neg else v), i + 1


@nb.njit(cache=True, nogil=True)
def parse_pairs_json(text, out, start):
    """Parse compact JSON `[["p","s"],...]` (decimal strings) into out[start:] as floats.

    Returns the pairs written, or -1 on anything else (the caller then uses float()).
    """
    n = len(text)
    if n < 2 or text[0] != 91 or text[n - 1] != 93:  # '[' ... ']'
        return -1
    if n == 2:
        return 0
    k = start
    i = 1
    while True:
        if k + 1 >= len(out) or text[i] != 91:
            return -1
        p, i = _decimal(text, i + 1, n)
        if i < 0 or text[i] != 44:  # ','
            return -1
        q, i = _decimal(text, i + 1, n)
        if i < 0 or i + 1 >= n or text[i] != 93:
            return -1
        out[k] = p
        out[k + 1] = q
        k += 2
        i += 1
        if i == n - 1:
            return (k - start) // 2
        if text[i] != 44:
            return -1
        i += 1


def extend_decimal_pairs(levels: array, pairs: list) -> bool:
    """Append [price, size] string pairs to `levels` as floats in one compiled pass; False
    (nothing appended) unless every pair is two plain decimal strings: then use float().

    Bybit sends prices and sizes as strings; float() on each costs ~0.1 us, this one pass
    (orjson re-serializes the pairs, numba parses them) a fraction of that for big messages.
    """
    try:
        text = orjson.dumps(pairs)
    except TypeError:  # orjson.JSONEncodeError, e.g. an integer beyond 64 bits
        return False
    start = len(levels)
    levels.frombytes(bytes(16 * len(pairs)))
    if parse_pairs_json(text, levels, start) != len(pairs):
        del levels[start:]
        return False
    return True


class MessageBuffer:
    """Append-only flat storage for normalized messages (cheap to fill from a parse loop)."""

    __slots__ = ("fields", "levels")

    def __init__(self) -> None:
        self.fields = array("q")
        self.levels = array("d")

    def __len__(self) -> int:
        return len(self.fields) // NFIELDS

    def add(
        self,
        t_us: int,
        recv_us: int,
        kind: int,
        rule: int,
        u_first: int,
        u_last: int,
        pu: int,
        bids,
        asks,
        strings: bool = False,
    ) -> None:
        """Append one message; `bids`/`asks` are sequences of [price, size] (floats or strings)."""
        levels = self.levels
        start = len(levels)
        flat = [*chain.from_iterable(bids), *chain.from_iterable(asks)]
        if has_bool(flat):
            raise ValueError("a price or size is a boolean")
        levels.extend(map(float, flat) if strings else flat)
        if len(levels) - start != 2 * (len(bids) + len(asks)):
            del levels[start:]
            raise ValueError("a level is not a [price, size] pair")
        self.fields.extend((t_us, recv_us, kind, rule, u_first, u_last, pu, len(bids), len(asks), 0))

    def n_levels(self) -> int:
        return len(self.levels) // 2

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Numpy views (msgs, levels) with F_OFF filled in; valid until the next append."""
        msgs = np.frombuffer(self.fields, dtype=np.int64).reshape(-1, NFIELDS)
        levels = np.frombuffer(self.levels, dtype=np.float64).reshape(-1, 2)
        if len(msgs) > 1:  # one message (the live path) starts at offset 0 already
            counts = msgs[:, F_NB] + msgs[:, F_NA]
            msgs[0, F_OFF] = 0
            counts[:-1].cumsum(out=msgs[1:, F_OFF])
        return msgs, levels

    def reset(self) -> None:
        """Empty in place, keeping the allocations (the live path reuses one buffer; no numpy
        view of it may be alive)."""
        del self.fields[:]
        del self.levels[:]

    def clear(self) -> None:
        # Fresh arrays: numpy views handed out earlier must not see resized buffers.
        self.fields = array("q")
        self.levels = array("d")


class MessageBlock:
    """Numpy-backed messages, filled in place by the compiled line parser
    (`bybit_lines.parse_lines`); the same `arrays()` contract as `MessageBuffer`.

    `fields` / `levels` are flat with room for `capacity` messages and `level_capacity`
    levels; `n` messages and `n_floats` level values (2 per level) are in use. F_OFF is
    written as messages are added.
    """

    __slots__ = ("fields", "levels", "n", "n_floats")

    def __init__(self, capacity: int = 65536, level_capacity: int | None = None) -> None:
        self.fields = np.empty(capacity * NFIELDS, dtype=np.int64)
        self.levels = np.empty(2 * (level_capacity or 16 * capacity), dtype=np.float64)
        self.n = 0
        self.n_floats = 0

    def __len__(self) -> int:
        return self.n

    @property
    def capacity(self) -> int:
        return len(self.fields) // NFIELDS

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Numpy views (msgs n x NFIELDS, levels m x 2) of the messages held."""
        return (self.fields[: self.n * NFIELDS].reshape(-1, NFIELDS),
                self.levels[: self.n_floats].reshape(-1, 2))

    def extend(self, buf: MessageBuffer) -> bool:
        """Append the messages of a MessageBuffer (the slow path's output); False (nothing
        appended) when they do not fit."""
        k = len(buf)
        floats = len(buf.levels)
        if self.n + k > self.capacity or self.n_floats + floats > len(self.levels):
            return False
        if k:
            msgs, levels = buf.arrays()
            rows = self.fields[self.n * NFIELDS:(self.n + k) * NFIELDS].reshape(k, NFIELDS)
            rows[:] = msgs
            rows[:, F_OFF] += self.n_floats // 2
            self.levels[self.n_floats:self.n_floats + floats] = levels.reshape(-1)
            self.n += k
            self.n_floats += floats
        return True
