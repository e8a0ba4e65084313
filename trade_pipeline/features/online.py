"""Online engine: the 118 features of one snapshot row at a time, O(1) amortized per row.

It runs the batch engine's kernel (`kernels.process_rows`) on a window of one row, keeping
the kernel's state (ring buffer, running window sums, previous row, quote-change times)
between calls, so its values equal the batch engine's on the same rows.

One `OnlineFeatures` serves one (exchange, symbol) stream in time order; `session_id`
changes restart the windows exactly as in batch. Fastest input: `update_book(ts_us,
session_id, book)` with `book` a float64 array of the 40 book values in BOOK_COLUMNS order
(bid_price_1, bid_size_1, ..., ask_price_10, ask_size_10; NaN for a missing level's price),
or `update_book_view` (same, returns the engine's reused buffer: no allocation per row).
`update(row)` also takes a dict or a tuple/list in SNAPSHOT_COLUMNS order.
Results: a float64 numpy array of the 118 features in FEATURE_NAMES order, NaN = null.
"""

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import numba as nb
import numpy as np

from trade_pipeline.features import kernels
from trade_pipeline.features.catalog import FEATURE_NAMES, N_FEATURES, N_RAW, resolve_params
from trade_pipeline.market.schema import BOOK_COLUMNS, SNAPSHOT_COLUMNS

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BOOK_POS = [SNAPSHOT_COLUMNS.index(c) for c in BOOK_COLUMNS]
_TS_POS = SNAPSHOT_COLUMNS.index("timestamp")
_SESSION_POS = SNAPSHOT_COLUMNS.index("session_id")
# Values that must not be NaN: every size and both level-1 prices.
_NOT_NAN_IDX = np.array([i for i, c in enumerate(BOOK_COLUMNS) if "_size_" in c]
                        + [BOOK_COLUMNS.index("bid_price_1"), BOOK_COLUMNS.index("ask_price_1")],
                        dtype=np.int64)


@nb.njit(cache=True, nogil=True)
def _load_book(src, dst, not_nan_idx):
    """Copy one row's 40 book values into dst; False if a size or a level-1 price is NaN.
    (One compiled call instead of a copy plus four numpy reductions on the live path.)"""
    for k in range(dst.shape[0]):
        dst[k] = src[k]
    nans = 0
    for k in not_nan_idx:
        nans += dst[k] != dst[k]
    return nans == 0


def to_epoch_us(ts) -> int:
    """int microseconds since the epoch, from an int (already us) or an aware datetime."""
    if isinstance(ts, dt.datetime):
        if ts.tzinfo is None:
            raise ValueError(f"naive timestamp {ts!r}: snapshot times are UTC-aware")
        return (ts - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(ts, int | np.integer):
        return int(ts)
    raise TypeError(f"timestamp must be an aware datetime or int microseconds, got {type(ts)}")


class OnlineFeatures:
    """Incremental feature state of one (exchange, symbol) stream."""

    names: tuple[str, ...] = FEATURE_NAMES

    def __init__(self, params: dict | None = None) -> None:
        self.params = resolve_params(params)
        self._pv = kernels.params_vector(self.params)
        self.state = kernels.KernelState()
        self._ts = np.zeros(1, dtype=np.int64)
        self._sess = np.zeros(1, dtype=np.int64)
        # One 118-vector: the kernel reads the book from its first 40 values (as a 1 x 40
        # row) and writes the 78 derived features into the rest (as a 78 x 1 column).
        self._result = np.zeros(N_FEATURES, dtype=np.float64)
        self._book = self._result[:N_RAW].reshape(1, N_RAW)
        self._out = self._result[N_RAW:].reshape(kernels.N_DERIVED, 1)
        self._book_row = self._result[:N_RAW]
        self.rows = 0

    def update_book(self, ts_us: int, session_id: int, book: np.ndarray | Sequence[float]
                    ) -> np.ndarray:
        """Features of the next row: 118 float64 (NaN = null), FEATURE_NAMES order (a new
        array; `update_book_view` avoids the copy)."""
        return self.update_book_view(ts_us, session_id, book).copy()

    def update_book_view(self, ts_us: int, session_id: int, book: np.ndarray | Sequence[float]
                         ) -> np.ndarray:
        """As `update_book`, but returns this engine's own result buffer: valid only until
        the next update (the live path's fast entry; `book` is best a float64 array)."""
        if not isinstance(book, np.ndarray) or book.dtype != np.float64:
            book = np.asarray(book, dtype=np.float64)
        if book.shape != (N_RAW,):
            raise ValueError(f"a book row has {N_RAW} values, got shape {book.shape}")
        if not _load_book(book, self._book_row, _NOT_NAN_IDX):
            raise ValueError("snapshot row has a NaN size or a missing level-1 price")
        self._ts[0] = ts_us
        self._sess[0] = session_id
        kernels.process(self._ts, self._sess, self._book, self._out, self.state, self._pv)
        self.rows += 1
        return self._result

    def update(self, row: Mapping | Sequence) -> np.ndarray:
        """Features of the next row given as a dict or a SNAPSHOT_COLUMNS-ordered sequence."""
        if isinstance(row, Mapping):
            ts, session = row["timestamp"], row["session_id"]
            book = [row[c] for c in BOOK_COLUMNS]
        else:
            ts, session = row[_TS_POS], row[_SESSION_POS]
            book = [row[i] for i in _BOOK_POS]
        book = [np.nan if v is None else v for v in book]
        return self.update_book(to_epoch_us(ts), int(session), book)

    def run(self, rows: Iterable) -> np.ndarray:
        """Features of many rows, one at a time (n x 118, NaN = null)."""
        return np.array([self.update(r) for r in rows], dtype=np.float64).reshape(-1, N_FEATURES)

    @staticmethod
    def as_dict(values: np.ndarray) -> dict[str, float | None]:
        """One result as {name: value or None}."""
        return {n: (None if v != v else float(v)) for n, v in zip(FEATURE_NAMES, values,
                                                                  strict=True)}
