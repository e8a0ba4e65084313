"""Order book state: two sorted price/size arrays (numba), plus a JSON-able checkpoint.

Each side is kept sorted by a key ascending from the best level: asks by price, bids by
minus the price. Every level the exchange sent is kept (the whole book, e.g. Bybit's 50 or a
Binance REST snapshot's 1000); emission takes the top N. Sorted arrays beat a price-indexed
grid here because Binance diffs touch prices far away from the touch.

Layout of `book` (float64, shape 4 x capacity): row 0 bid keys, 1 bid sizes, 2 ask keys,
3 ask sizes. The level counts live in the sampler's int state (S_NB, S_NA).
"""

from dataclasses import dataclass, field

import numba as nb
import numpy as np

BID_KEYS, BID_SIZES, ASK_KEYS, ASK_SIZES = 0, 1, 2, 3


@nb.njit(cache=True, nogil=True)
def set_level(keys, sizes, n, key, size):
    """Set (size > 0) or delete (size == 0) the level `key` on one side; returns the new count.

    The caller guarantees capacity for one more level. Deleting an absent level is a no-op
    (Binance sends deletes for levels outside any snapshot).
    """
    i = np.searchsorted(keys[:n], key)
    if i < n and keys[i] == key:
        if size > 0.0:
            sizes[i] = size
            return n
        for j in range(i, n - 1):
            keys[j] = keys[j + 1]
            sizes[j] = sizes[j + 1]
        return n - 1
    if size <= 0.0:
        return n
    for j in range(n, i, -1):
        keys[j] = keys[j - 1]
        sizes[j] = sizes[j - 1]
    keys[i] = key
    sizes[i] = size
    return n + 1


def new_book(capacity: int = 256) -> np.ndarray:
    return np.zeros((4, max(capacity, 16)), dtype=np.float64)


def grow_book(book: np.ndarray, needed: int) -> np.ndarray:
    """Return a book with capacity >= needed (content kept)."""
    if book.shape[1] >= needed:
        return book
    bigger = new_book(max(needed, 2 * book.shape[1]))
    bigger[:, : book.shape[1]] = book
    return bigger


@dataclass
class BookState:
    """A small serializable checkpoint of the sampler: enough to continue a session later.

    `bids`/`asks` are the full book sides as [price, size], best first. `next_grid_us` is the
    first grid time not yet emitted. A daily partition stores this and the next day passes it
    as `initial_state`, so a session that spans midnight keeps its session_id.
    """

    exchange: str | None = None
    symbol: str | None = None
    valid: bool = False  # a session is open (book trustworthy)
    pending_sync: bool = False  # Binance: REST snapshot loaded, waiting for the first diff
    ever_synced: bool = False  # some snapshot was seen (later deltas are 'after gap', not 'before snapshot')
    last_update_id: int | None = None
    rest_update_id: int | None = None  # Binance lastUpdateId while pending
    last_time_us: int | None = None  # applied time of the last message that moved the clock
    last_applied_us: int | None = None  # time of record of the last message applied
    last_recv_us: int | None = None
    # the clock's reference (docs/DATA_FORMATS.md rule 7): raw time of record and receive time of the last
    # message that moved the clock
    last_raw_time_us: int | None = None
    clock_recv_us: int | None = None
    next_grid_us: int | None = None
    session_id: int | None = None  # current session (or last one, when not valid)
    bids: list[list[float]] = field(default_factory=list)
    asks: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: dict) -> "BookState":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown book state fields: {sorted(unknown)}")
        return cls(**data)

    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None
