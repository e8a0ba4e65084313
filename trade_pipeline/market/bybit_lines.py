"""Compiled parser of Bybit lines: decompressed bytes in, normalized messages out.

`parse_lines` walks a block of complete lines (a numpy uint8 view of decompressed bytes) and
writes each book message straight into flat `fields` / `levels` arrays (the layout of
`messages.py`), building no Python object per message. Two line forms:

- `WIRE`: the raw capture store, `<receive_ns> <Bybit v5 orderbook frame>` (the prefix is
  optional, as in the Python handler `readers._bybit_wire`);
- `RECORD`: docs/DATA_FORMATS.md format 2 (`readers._bybit_record`).

The kernel is only a fast path. It accepts a line when it is certain the Python handler would
turn it into exactly the same message: strict JSON (no escapes, ASCII only, no duplicate
field it reads), the expected symbol, a `delta`/`snapshot` type, plain decimal prices and
sizes that convert exactly, and times and ids in their plausible range (docs/DATA_FORMATS.md rule 8).
Anything else - a bad line, a control message, a trade line, another symbol, an unusual number
- stops the kernel at that line with status `SLOW`; the caller hands that one line to the
Python handler (which counts it, skips it or parses it) and resumes the kernel after it. So
every rule about bad input lives in one place, the handlers, and the kernel never has to
know them: it only has to be right about the lines it accepts (tests compare both paths).
"""

import numba as nb
import numpy as np

from trade_pipeline.market.messages import (
    F_KIND,
    F_NA,
    F_NB,
    F_OFF,
    F_PU,
    F_RECV,
    F_RULE,
    F_T,
    F_UFIRST,
    F_ULAST,
    K_DELTA,
    K_SNAPSHOT,
    MAX_TIME_US,
    MIN_TIME_US,
    NFIELDS,
    NULL_I64,
    R_BYBIT,
)

WIRE = 0
RECORD = 1

# Status returned by parse_lines.
DONE = 0  # every line of the block was consumed
FULL = 1  # the output arrays have no room for the next line: take them and call again
SLOW = 2  # the line at `pos` (ending at `eol`) needs the Python handler

# Plausible times of record (docs/DATA_FORMATS.md rule 8): 2009-01-01 <= t < 2100-01-01, in ms. Lines
# outside take the slow path, where the handlers apply the rule.
MIN_MS = MIN_TIME_US // 1000
MAX_MS = MAX_TIME_US // 1000
MAX_DIGITS_FLOAT = 15  # m < 10**15 < 2**53: one IEEE operation gives the correctly rounded value
MAX_DIGITS_INT = 18  # < 2**63 without overflow checks

_POW10 = np.array([10.0**k for k in range(23)])  # exact doubles (10**22 is the last one)

# Field names as byte arrays (numba treats global arrays as constants).
_TOPIC = np.frombuffer(b"topic", np.uint8)
_TYPE = np.frombuffer(b"type", np.uint8)
_TS = np.frombuffer(b"ts", np.uint8)
_DATA = np.frombuffer(b"data", np.uint8)
_S = np.frombuffer(b"s", np.uint8)
_B = np.frombuffer(b"b", np.uint8)
_A = np.frombuffer(b"a", np.uint8)
_U = np.frombuffer(b"u", np.uint8)
_SYMBOL = np.frombuffer(b"symbol", np.uint8)
_TIMESTAMP_MS = np.frombuffer(b"timestamp_ms", np.uint8)
_RECEIVED_MS = np.frombuffer(b"received_timestamp_ms", np.uint8)
_UPDATE_ID = np.frombuffer(b"update_id", np.uint8)
_BIDS = np.frombuffer(b"bids", np.uint8)
_ASKS = np.frombuffer(b"asks", np.uint8)
_DELTA = np.frombuffer(b"delta", np.uint8)
_SNAPSHOT = np.frombuffer(b"snapshot", np.uint8)
_ORDERBOOK = np.frombuffer(b"orderbook.", np.uint8)
_TRUE = np.frombuffer(b"true", np.uint8)
_FALSE = np.frombuffer(b"false", np.uint8)
_NULL = np.frombuffer(b"null", np.uint8)

LINE_ROOM = 1024  # pairs of room asked for before each line
MAX_DEPTH = 32  # nesting skipped inside an unknown field; deeper: slow path


@nb.njit(cache=True, nogil=True, inline="always")
def _ws(t, i, n):
    # every helper passes a failed step's -1 on (a negative index would wrap around)
    if i < 0:
        return i
    while i < n and (t[i] == 32 or t[i] == 9 or t[i] == 13):  # space, tab, CR
        i += 1
    return i


@nb.njit(cache=True, nogil=True)
def _eq(t, s, e, lit):
    if e - s != len(lit):
        return False
    for k in range(len(lit)):  # noqa: SIM110 - a loop numba compiles
        if t[s + k] != lit[k]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _string_rest(t, j, n):
    """The rest of a JSON string opened before t[j], without escapes, ASCII only: the index
    after its closing quote, or -1."""
    if j < 0:
        return -1
    while j < n:
        c = t[j]
        if c == 34:
            return j + 1
        if c == 92 or c < 32 or c >= 128:  # escape, control, non-ASCII: slow path
            return -1
        j += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _string(t, i, n):
    """A JSON string at t[i] without escapes, ASCII only: (start, end, next) or next = -1."""
    if i < 0 or i >= n or t[i] != 34:
        return 0, 0, -1
    j = _string_rest(t, i + 1, n)
    if j < 0:
        return 0, 0, -1
    return i + 1, j - 1, j


@nb.njit(cache=True, nogil=True)
def _number(t, i, n):
    """A JSON number at t[i]: (kind, int value, float value, next).

    kind 1: an integer of at most MAX_DIGITS_INT digits (float value: its exact double when
    it has at most MAX_DIGITS_FLOAT digits, else NaN); kind 2: a number with a fraction or
    exponent whose double is exact to compute (Clinger's fast path); kind 0 (next = -1):
    anything else, including valid JSON numbers this kernel does not convert.
    """
    if i < 0:
        return 0, 0, 0.0, -1
    j = i
    neg = False
    if j < n and t[j] == 45:  # '-'
        neg = True
        j += 1
    if j >= n or not (48 <= t[j] <= 57):
        return 0, 0, 0.0, -1
    m = 0
    start = j
    if t[j] == 48:  # a leading 0 stands alone
        j += 1
        if j < n and 48 <= t[j] <= 57:
            return 0, 0, 0.0, -1
    else:
        while j < n and 48 <= t[j] <= 57:
            m = m * 10 + (t[j] - 48)
            j += 1
    digits = j - start
    frac = 0
    is_float = False
    if j < n and t[j] == 46:  # '.'
        is_float = True
        j += 1
        start = j
        while j < n and 48 <= t[j] <= 57:
            m = m * 10 + (t[j] - 48)
            j += 1
        frac = j - start
        if frac == 0:
            return 0, 0, 0.0, -1
        digits += frac
    if digits > MAX_DIGITS_INT:  # (m may have wrapped: refused either way)
        return 0, 0, 0.0, -1
    exp = 0
    if j < n and (t[j] == 101 or t[j] == 69):  # 'e' / 'E'
        is_float = True
        j += 1
        eneg = False
        if j < n and (t[j] == 43 or t[j] == 45):
            eneg = t[j] == 45
            j += 1
        if j >= n or not (48 <= t[j] <= 57):
            return 0, 0, 0.0, -1
        edigits = 0
        while j < n and 48 <= t[j] <= 57:
            if edigits >= 4:
                return 0, 0, 0.0, -1
            exp = exp * 10 + (t[j] - 48)
            edigits += 1
            j += 1
        if eneg:
            exp = -exp
    if not is_float:
        value = -m if neg else m
        if digits > MAX_DIGITS_FLOAT:
            return 1, value, np.nan, j
        return 1, value, float(value), j  # as Python's float(int): -0 is 0.0
    if digits > MAX_DIGITS_FLOAT:
        return 0, 0, 0.0, -1
    p = exp - frac
    if 0 <= p <= 22:
        v = m * _POW10[p]
    elif -22 <= p < 0:
        v = m / _POW10[-p]
    else:
        return 0, 0, 0.0, -1
    return 2, 0, (-v if neg else v), j


@nb.njit(cache=True, nogil=True)
def _decimal_text(t, i, n):
    """A quoted plain decimal `"-?digits[.digits]"` at t[i] (what Bybit sends): (value, next);
    next = -1 for anything float() might read differently or that is not exact here."""
    if i < 0 or i >= n or t[i] != 34:
        return 0.0, -1
    j = i + 1
    neg = False
    if j < n and t[j] == 45:
        neg = True
        j += 1
    m = 0
    digits = 0
    frac = 0
    dot = False
    while j < n and t[j] != 34:
        c = t[j]
        if 48 <= c <= 57:
            if digits >= MAX_DIGITS_FLOAT:
                return 0.0, -1
            m = m * 10 + (c - 48)
            digits += 1
            if dot:
                frac += 1
        elif c == 46 and not dot:
            dot = True
        else:
            return 0.0, -1
        j += 1
    if j >= n or digits == 0:
        return 0.0, -1
    v = m / _POW10[frac]
    return (-v if neg else v), j + 1


@nb.njit(cache=True, nogil=True)
def _literal(t, i, n, lit):
    if i < 0 or i + len(lit) > n:
        return -1
    for k in range(len(lit)):
        if t[i + k] != lit[k]:
            return -1
    return i + len(lit)


@nb.njit(cache=True, nogil=True)
def _scalar(t, i, n):
    """Skip a JSON scalar (string, number, true, false, null); next index or -1."""
    if i < 0 or i >= n:
        return -1
    c = t[i]
    if c == 34:
        return _string(t, i, n)[2]
    if c == 45 or 48 <= c <= 57:
        return _number(t, i, n)[3]
    if c == 116:
        return _literal(t, i, n, _TRUE)
    if c == 102:
        return _literal(t, i, n, _FALSE)
    if c == 110:
        return _literal(t, i, n, _NULL)
    return -1


@nb.njit(cache=True, nogil=True)
def _skip(t, i, n):
    """Skip (and validate) any JSON value at t[i]; next index or -1 (slow path)."""
    if i < 0 or i >= n:
        return -1
    c = t[i]
    if c != 91 and c != 123:
        return _scalar(t, i, n)
    stack = np.empty(MAX_DEPTH, np.uint8)  # closing bracket of each open container
    d = 0
    while True:
        # i is at a value
        if i >= n:
            return -1
        c = t[i]
        if c == 91 or c == 123:
            if d >= MAX_DEPTH:
                return -1
            close = 93 if c == 91 else 125
            stack[d] = close
            d += 1
            i = _ws(t, i + 1, n)
            if i < n and t[i] == close:  # empty container
                d -= 1
                i += 1
            else:
                if close == 125:  # an object: key then ':'
                    i = _string(t, i, n)[2]
                    if i < 0:
                        return -1
                    i = _ws(t, i, n)
                    if i >= n or t[i] != 58:
                        return -1
                    i = _ws(t, i + 1, n)
                continue
        else:
            i = _scalar(t, i, n)
            if i < 0:
                return -1
        # after a value: ',' (next element) or the closing bracket(s)
        while True:
            if d == 0:
                return i
            i = _ws(t, i, n)
            if i >= n:
                return -1
            if t[i] == stack[d - 1]:
                d -= 1
                i += 1
                continue
            if t[i] != 44:
                return -1
            i = _ws(t, i + 1, n)
            if stack[d - 1] == 125:
                i = _string(t, i, n)[2]
                if i < 0:
                    return -1
                i = _ws(t, i, n)
                if i >= n or t[i] != 58:
                    return -1
                i = _ws(t, i + 1, n)
            break


@nb.njit(cache=True, nogil=True)
def _pairs(t, i, n, levels, nl, quoted):
    """An array of [price, size] pairs at t[i] into levels[nl:]: (pairs, next) or next = -1.

    quoted: wire form (decimal strings); else format 2 (JSON numbers)."""
    if i < 0 or i >= n or t[i] != 91:
        return 0, -1
    i = _ws(t, i + 1, n)
    if i < n and t[i] == 93:
        return 0, i + 1
    k = 0
    while True:
        if i >= n or t[i] != 91 or nl + 2 * k + 1 >= len(levels):
            return 0, -1
        i = _ws(t, i + 1, n)
        if quoted:
            p, i = _decimal_text(t, i, n)
        else:
            p, i = _float(t, i, n)
        if i < 0:
            return 0, -1
        i = _ws(t, i, n)
        if i >= n or t[i] != 44:
            return 0, -1
        i = _ws(t, i + 1, n)
        if quoted:
            q, i = _decimal_text(t, i, n)
        else:
            q, i = _float(t, i, n)
        if i < 0:
            return 0, -1
        levels[nl + 2 * k] = p
        levels[nl + 2 * k + 1] = q
        i = _ws(t, i, n)
        if i >= n or t[i] != 93:
            return 0, -1
        k += 1
        i = _ws(t, i + 1, n)
        if i >= n:
            return 0, -1
        if t[i] == 93:
            return k, i + 1
        if t[i] != 44:
            return 0, -1
        i = _ws(t, i + 1, n)


@nb.njit(cache=True, nogil=True)
def _float(t, i, n):
    """A JSON number as its exact double: (value, next) or next = -1."""
    _, _, v, j = _number(t, i, n)
    if j < 0 or v != v:  # NaN: an integer too long to convert exactly here
        return 0.0, -1
    return v, j


@nb.njit(cache=True, nogil=True)
def _id(t, i, n):
    """A non-negative JSON integer (an update id): (value, next) or next = -1."""
    kind, v, _, j = _number(t, i, n)
    if kind != 1 or v < 0:
        return 0, -1
    return v, j


@nb.njit(cache=True, nogil=True)
def _time_ms(t, i, n):
    """A plausible time in ms (JSON integer): (value, next) or next = -1."""
    kind, v, _, j = _number(t, i, n)
    if kind != 1 or v < MIN_MS or v >= MAX_MS:
        return 0, -1
    return v, j


@nb.njit(cache=True, nogil=True)
def _kind(t, s, e):
    if _eq(t, s, e, _DELTA):
        return K_DELTA
    if _eq(t, s, e, _SNAPSHOT):
        return K_SNAPSHOT
    return -1


@nb.njit(cache=True, nogil=True)
def _swap_sides(levels, start, first, second):
    """levels[start:] holds `first` pairs then `second` pairs: put the second block first
    (in place: reverse each block, then both)."""
    _reverse_pairs(levels, start, first)
    _reverse_pairs(levels, start + 2 * first, second)
    _reverse_pairs(levels, start, first + second)


@nb.njit(cache=True, nogil=True)
def _reverse_pairs(levels, start, count):
    lo = start
    hi = start + 2 * (count - 1)
    while lo < hi:
        p, q = levels[lo], levels[lo + 1]
        levels[lo], levels[lo + 1] = levels[hi], levels[hi + 1]
        levels[hi], levels[hi + 1] = p, q
        lo += 2
        hi -= 2


@nb.njit(cache=True, nogil=True)
def _side(t, i, n, levels, nl, quoted, is_bids, nbid, nask):
    """One side's array after whatever side came before; bids always end up first in
    levels[nl:]. Returns (next, nbid, nask); nbid / nask = -1 until their side is seen."""
    have_b = nbid >= 0
    have_a = nask >= 0
    if (is_bids and have_b) or (not is_bids and have_a):
        return -1, nbid, nask  # duplicate field
    before = (nbid if have_b else 0) + (nask if have_a else 0)
    cnt, i = _pairs(t, i, n, levels, nl + 2 * before, quoted)
    if i < 0:
        return -1, nbid, nask
    if is_bids:
        if have_a and nask and cnt:  # asks came first: bids go in front
            _swap_sides(levels, nl, nask, cnt)
        return i, cnt, nask
    return i, nbid, cnt


@nb.njit(cache=True, nogil=True)
def _wire_data(t, i, n, sym, levels, nl):
    """The `data` object of an orderbook frame: (next, u, nbid, nask); next = -1: slow."""
    if i >= n or t[i] != 123:
        return -1, 0, 0, 0
    i = _ws(t, i + 1, n)
    seen_s = seen_u = False
    u = 0
    nbid = nask = -1  # -1: side not seen yet
    if i < n and t[i] == 125:
        return -1, 0, 0, 0
    while True:
        ks, ke, i = _string(t, i, n)
        if i < 0:
            return -1, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n or t[i] != 58:
            return -1, 0, 0, 0
        i = _ws(t, i + 1, n)
        if _eq(t, ks, ke, _S):
            if seen_s:
                return -1, 0, 0, 0
            vs, ve, i = _string(t, i, n)
            if i < 0 or not _eq(t, vs, ve, sym):
                return -1, 0, 0, 0
            seen_s = True
        elif _eq(t, ks, ke, _B):
            i, nbid, nask = _side(t, i, n, levels, nl, True, True, nbid, nask)
        elif _eq(t, ks, ke, _A):
            i, nbid, nask = _side(t, i, n, levels, nl, True, False, nbid, nask)
        elif _eq(t, ks, ke, _U):
            if seen_u:
                return -1, 0, 0, 0
            u, i = _id(t, i, n)
            seen_u = True
        else:
            i = _skip(t, i, n)
        if i < 0:
            return -1, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n:
            return -1, 0, 0, 0
        if t[i] == 125:
            if not (seen_s and seen_u and nbid >= 0 and nask >= 0):
                return -1, 0, 0, 0
            return i + 1, u, nbid, nask
        if t[i] != 44:
            return -1, 0, 0, 0
        i = _ws(t, i + 1, n)


@nb.njit(cache=True, nogil=True)
def _wire(t, i, n, sym, levels, nl):
    """One raw-store line at t[i]: (end, t_us, recv_us, kind, u, nbid, nask); end is the
    index of the line's newline (or n), -1 when the line needs the slow path.

    The frame is first read in the layout Bybit sends (and the collector and simulator
    store): literal field names in their usual order, which is cheap; a frame laid out
    otherwise is read again field by field."""
    recv = NULL_I64
    if i < n and 48 <= t[i] <= 57:
        ns = 0
        digits = 0
        while i < n and 48 <= t[i] <= 57:
            # receive times are 19-digit ns: stop before int64 overflows (beyond MAX_MS anyway)
            if digits >= 19 or ns >= 922_337_203_685_477_580:
                return -1, 0, 0, 0, 0, 0, 0
            ns = ns * 10 + (t[i] - 48)
            digits += 1
            i += 1
        if i >= n or t[i] != 32 or ns < MIN_MS * 1_000_000 or ns >= MAX_MS * 1_000_000:
            return -1, 0, 0, 0, 0, 0, 0
        recv = ns // 1000
        i += 1
    end, t_us, kind, u, nbid, nask = _wire_usual(t, i, n, sym, levels, nl)
    if end < 0:
        end, t_us, kind, u, nbid, nask = _wire_any(t, i, n, sym, levels, nl)
    return end, t_us, recv, kind, u, nbid, nask


# The usual layout, piece by piece (between the pieces: the topic's tail, the type, numbers,
# the symbol, the two level arrays).
_U_TOPIC = np.frombuffer(b'{"topic":"orderbook.', np.uint8)
_U_TYPE = np.frombuffer(b',"type":"', np.uint8)
_U_TS = np.frombuffer(b'","ts":', np.uint8)
_U_DATA = np.frombuffer(b',"data":{"s":"', np.uint8)
_U_B = np.frombuffer(b'","b":', np.uint8)
_U_A = np.frombuffer(b',"a":', np.uint8)
_U_U = np.frombuffer(b',"u":', np.uint8)
_U_SEQ = np.frombuffer(b',"seq":', np.uint8)
_U_CTS = np.frombuffer(b'},"cts":', np.uint8)


@nb.njit(cache=True, nogil=True)
def _wire_usual(t, i, n, sym, levels, nl):
    """The frame at t[i] in Bybit's own layout: (end, t_us, kind, u, nbid, nask), end = -1
    when it is laid out otherwise (or is not a book message this kernel reads)."""
    i = _literal(t, i, n, _U_TOPIC)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _string_rest(t, i, n)  # the topic's tail
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_TYPE)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    kind = K_DELTA
    j = _literal(t, i, n, _DELTA)
    if j < 0:
        kind = K_SNAPSHOT
        j = _literal(t, i, n, _SNAPSHOT)
        if j < 0:
            return -1, 0, 0, 0, 0, 0
    i = _literal(t, j, n, _U_TS)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    ts, i = _time_ms(t, i, n)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_DATA)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, sym)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_B)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    nbid, i = _pairs(t, i, n, levels, nl, True)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_A)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    nask, i = _pairs(t, i, n, levels, nl + 2 * nbid, True)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_U)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    u, i = _id(t, i, n)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_SEQ)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _number(t, i, n)[3]
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _literal(t, i, n, _U_CTS)
    if i < 0:
        return -1, 0, 0, 0, 0, 0
    i = _number(t, i, n)[3]
    if i < 0 or i >= n or t[i] != 125:
        return -1, 0, 0, 0, 0, 0
    end = _ws(t, i + 1, n)
    if end < n and t[end] != 10:
        return -1, 0, 0, 0, 0, 0
    return end, ts * 1000, kind, u, nbid, nask


@nb.njit(cache=True, nogil=True)
def _wire_any(t, i, n, sym, levels, nl):
    """The frame at t[i], fields in any order: like `_wire_usual`."""
    i = _ws(t, i, n)
    if i >= n or t[i] != 123:
        return -1, 0, 0, 0, 0, 0
    i = _ws(t, i + 1, n)
    seen_topic = seen_type = seen_ts = seen_data = False
    kind = -1
    ts = 0
    u = 0
    nbid = nask = 0
    if i < n and t[i] == 125:
        return -1, 0, 0, 0, 0, 0
    while True:
        ks, ke, i = _string(t, i, n)
        if i < 0:
            return -1, 0, 0, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n or t[i] != 58:
            return -1, 0, 0, 0, 0, 0
        i = _ws(t, i + 1, n)
        if _eq(t, ks, ke, _TOPIC):
            vs, ve, i = _string(t, i, n)
            if seen_topic or i < 0 or ve - vs < len(_ORDERBOOK) or not _eq(
                    t, vs, vs + len(_ORDERBOOK), _ORDERBOOK):
                return -1, 0, 0, 0, 0, 0
            seen_topic = True
        elif _eq(t, ks, ke, _TYPE):
            vs, ve, i = _string(t, i, n)
            if seen_type or i < 0:
                return -1, 0, 0, 0, 0, 0
            kind = _kind(t, vs, ve)
            seen_type = True
        elif _eq(t, ks, ke, _TS):
            if seen_ts:
                return -1, 0, 0, 0, 0, 0
            ts, i = _time_ms(t, i, n)
            seen_ts = True
        elif _eq(t, ks, ke, _DATA):
            if seen_data:
                return -1, 0, 0, 0, 0, 0
            i, u, nbid, nask = _wire_data(t, i, n, sym, levels, nl)
            seen_data = True
        else:
            i = _skip(t, i, n)
        if i < 0:
            return -1, 0, 0, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n:
            return -1, 0, 0, 0, 0, 0
        if t[i] == 125:
            break
        if t[i] != 44:
            return -1, 0, 0, 0, 0, 0
        i = _ws(t, i + 1, n)
    end = _ws(t, i + 1, n)
    if (end < n and t[end] != 10) or kind < 0 or not (seen_topic and seen_ts and seen_data):
        return -1, 0, 0, 0, 0, 0
    return end, ts * 1000, kind, u, nbid, nask


@nb.njit(cache=True, nogil=True)
def _record(t, i, n, sym, levels, nl):
    """One format-2 line at t[i]: like `_wire` (the recorder's field order first, then any)."""
    end, t_us, recv, kind, u, nbid, nask = _record_usual(t, i, n, sym, levels, nl)
    if end < 0:
        end, t_us, recv, kind, u, nbid, nask = _record_any(t, i, n, sym, levels, nl)
    return end, t_us, recv, kind, u, nbid, nask


_R_EXCHANGE = np.frombuffer(b"exchange", np.uint8)
_R_SEQUENCE_ID = np.frombuffer(b"sequence_id", np.uint8)


@nb.njit(cache=True, nogil=True)
def _key(t, i, n, lit):
    """`"<lit>"` + optional spaces + `:` + optional spaces at t[i]: the value's index or -1
    (also for i = -1: a failed step before)."""
    if i < 0 or i >= n or t[i] != 34:
        return -1
    i = _literal(t, i + 1, n, lit)
    if i < 0 or i >= n or t[i] != 34:
        return -1
    i = _ws(t, i + 1, n)
    if i >= n or t[i] != 58:
        return -1
    return _ws(t, i + 1, n)


@nb.njit(cache=True, nogil=True)
def _comma(t, i, n):
    """Optional spaces, `,`, optional spaces at t[i]: the next index or -1 (also for i = -1)."""
    if i < 0:
        return -1
    i = _ws(t, i, n)
    if i >= n or t[i] != 44:
        return -1
    return _ws(t, i + 1, n)


@nb.njit(cache=True, nogil=True)
def _record_usual(t, i, n, sym, levels, nl):
    """A format-2 line in the field order the recorder writes (exchange, symbol,
    timestamp_ms, received_timestamp_ms, type, bids, asks, update_id, sequence_id; any
    spacing): like `_wire`, end = -1 when laid out otherwise."""
    i = _ws(t, i, n)
    if i >= n or t[i] != 123:
        return -1, 0, 0, 0, 0, 0, 0
    i = _key(t, _ws(t, i + 1, n), n, _R_EXCHANGE)
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    i = _string(t, i, n)[2]
    i = _key(t, _comma(t, i, n), n, _SYMBOL) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    vs, ve, i = _string(t, i, n)
    if i < 0 or not _eq(t, vs, ve, sym):
        return -1, 0, 0, 0, 0, 0, 0
    i = _key(t, _comma(t, i, n), n, _TIMESTAMP_MS)
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    ts, i = _time_ms(t, i, n)
    i = _key(t, _comma(t, i, n), n, _RECEIVED_MS) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    recv = NULL_I64
    j = _literal(t, i, n, _NULL)
    if j >= 0:
        i = j
    else:
        r, i = _time_ms(t, i, n)
        recv = r * 1000
    i = _key(t, _comma(t, i, n), n, _TYPE) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    vs, ve, i = _string(t, i, n)
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    kind = _kind(t, vs, ve)
    i = _key(t, _comma(t, i, n), n, _BIDS)
    if kind < 0 or i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    nbid, i = _pairs(t, i, n, levels, nl, False)
    i = _key(t, _comma(t, i, n), n, _ASKS) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    nask, i = _pairs(t, i, n, levels, nl + 2 * nbid, False)
    i = _key(t, _comma(t, i, n), n, _UPDATE_ID) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    u, i = _id(t, i, n)
    i = _key(t, _comma(t, i, n), n, _R_SEQUENCE_ID) if i >= 0 else -1
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    i = _number(t, i, n)[3]
    if i < 0:
        return -1, 0, 0, 0, 0, 0, 0
    i = _ws(t, i, n)
    if i >= n or t[i] != 125:
        return -1, 0, 0, 0, 0, 0, 0
    end = _ws(t, i + 1, n)
    if end < n and t[end] != 10:
        return -1, 0, 0, 0, 0, 0, 0
    return end, ts * 1000, recv, kind, u, nbid, nask


@nb.njit(cache=True, nogil=True)
def _record_any(t, i, n, sym, levels, nl):
    """One format-2 line at t[i], fields in any order: like `_wire`."""
    i = _ws(t, i, n)
    if i >= n or t[i] != 123:
        return -1, 0, 0, 0, 0, 0, 0
    i = _ws(t, i + 1, n)
    seen_sym = seen_type = seen_ts = seen_recv = seen_u = False
    kind = -1
    ts = 0
    u = 0
    recv = NULL_I64
    nbid = nask = -1  # -1: side not seen yet
    if i < n and t[i] == 125:
        return -1, 0, 0, 0, 0, 0, 0
    while True:
        ks, ke, i = _string(t, i, n)
        if i < 0:
            return -1, 0, 0, 0, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n or t[i] != 58:
            return -1, 0, 0, 0, 0, 0, 0
        i = _ws(t, i + 1, n)
        if _eq(t, ks, ke, _SYMBOL):
            vs, ve, i = _string(t, i, n)
            if seen_sym or i < 0 or not _eq(t, vs, ve, sym):
                return -1, 0, 0, 0, 0, 0, 0
            seen_sym = True
        elif _eq(t, ks, ke, _TYPE):
            vs, ve, i = _string(t, i, n)
            if seen_type or i < 0:
                return -1, 0, 0, 0, 0, 0, 0
            kind = _kind(t, vs, ve)
            seen_type = True
        elif _eq(t, ks, ke, _TIMESTAMP_MS):
            if seen_ts:
                return -1, 0, 0, 0, 0, 0, 0
            ts, i = _time_ms(t, i, n)
            seen_ts = True
        elif _eq(t, ks, ke, _RECEIVED_MS):
            if seen_recv:
                return -1, 0, 0, 0, 0, 0, 0
            seen_recv = True
            j = _literal(t, i, n, _NULL)
            if j >= 0:
                i = j
            else:
                r, i = _time_ms(t, i, n)
                recv = r * 1000
        elif _eq(t, ks, ke, _UPDATE_ID):
            if seen_u:
                return -1, 0, 0, 0, 0, 0, 0
            u, i = _id(t, i, n)
            seen_u = True
        elif _eq(t, ks, ke, _BIDS):
            i, nbid, nask = _side(t, i, n, levels, nl, False, True, nbid, nask)
        elif _eq(t, ks, ke, _ASKS):
            i, nbid, nask = _side(t, i, n, levels, nl, False, False, nbid, nask)
        else:
            i = _skip(t, i, n)
        if i < 0:
            return -1, 0, 0, 0, 0, 0, 0
        i = _ws(t, i, n)
        if i >= n:
            return -1, 0, 0, 0, 0, 0, 0
        if t[i] == 125:
            break
        if t[i] != 44:
            return -1, 0, 0, 0, 0, 0, 0
        i = _ws(t, i + 1, n)
    end = _ws(t, i + 1, n)
    if ((end < n and t[end] != 10) or kind < 0
            or not (seen_sym and seen_ts and seen_u and nbid >= 0 and nask >= 0)):
        return -1, 0, 0, 0, 0, 0, 0
    return end, ts * 1000, recv, kind, u, nbid, nask


@nb.njit(cache=True, nogil=True)
def parse_lines(text, pos, form, sym, fields, n_msgs, levels, n_levels, line_no):
    """Parse the lines of text[pos:] into fields[n_msgs*NFIELDS:] / levels[n_levels:].

    text: uint8 array of complete lines ('\\n'-separated; the last may lack its newline).
    sym: the stream's symbol as a uint8 array. fields / levels: flat int64 / float64 output
    with room for what they hold plus more. Returns (pos, n_msgs, n_levels, line_no, status,
    eol): status DONE (pos == len(text)), FULL (no room for the line at pos: take the
    output, call again with empty arrays) or SLOW (the line text[pos:eol] needs the Python
    handler; continue at eol + 1, line_no + 1). line_no counts the lines consumed.
    """
    n = len(text)
    cap_msgs = len(fields) // NFIELDS
    while pos < n:
        # room for one message and LINE_ROOM pairs (a line with more pairs than the arrays
        # have room for fails in `_pairs` and takes the slow path, which is always right)
        if n_msgs >= cap_msgs or n_levels + 2 * LINE_ROOM > len(levels):
            return pos, n_msgs, n_levels, line_no, FULL, pos
        # No token accepts a newline byte, so parsing over text[pos:n] stops inside the line;
        # the line must end right after its object (`_end`).
        if form == WIRE:
            end, t_us, recv, kind, u, nbid, nask = _wire(text, pos, n, sym, levels, n_levels)
        else:
            end, t_us, recv, kind, u, nbid, nask = _record(text, pos, n, sym, levels, n_levels)
        if end < 0:
            eol = pos
            while eol < n and text[eol] != 10:
                eol += 1
            return pos, n_msgs, n_levels, line_no, SLOW, eol
        eol = end
        m = n_msgs * NFIELDS
        fields[m + F_T] = t_us
        fields[m + F_RECV] = recv
        fields[m + F_KIND] = kind
        fields[m + F_RULE] = R_BYBIT
        fields[m + F_UFIRST] = u
        fields[m + F_ULAST] = u
        fields[m + F_PU] = NULL_I64
        fields[m + F_NB] = nbid
        fields[m + F_NA] = nask
        fields[m + F_OFF] = n_levels // 2
        n_msgs += 1
        n_levels += 2 * (nbid + nask)
        line_no += 1
        pos = eol + 1
    return n, n_msgs, n_levels, line_no, DONE, n
