"""The normalized book message: what every reader produces and the book kernel consumes.

A message is one row of ten int64 fields plus its price levels. Readers append into a
`MessageBuffer` (flat `array` objects, no per-message Python objects), and `arrays()` hands
the kernel two numpy views: `msgs` (n x NFIELDS int64) and `levels` (m x 2 float64, price and
size; each message's bids first, then its asks).

Times are int64 microseconds since the epoch (UTC). `NULL_TIME` marks a missing receive time.
"""

from array import array
from itertools import chain

import numpy as np

NULL_I64 = np.iinfo(np.int64).min  # sentinel for a missing int64 (receive time, update id)
NULL_TIME = NULL_I64

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
        if strings:
            levels.extend(map(float, chain.from_iterable(bids)))
            levels.extend(map(float, chain.from_iterable(asks)))
        else:
            levels.extend(chain.from_iterable(bids))
            levels.extend(chain.from_iterable(asks))
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

    def clear(self) -> None:
        # Fresh arrays: numpy views handed out earlier must not see resized buffers.
        self.fields = array("q")
        self.levels = array("d")
