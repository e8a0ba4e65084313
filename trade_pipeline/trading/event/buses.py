"""The two one-way order buses between the strategy and the exchange (FIFO, by time).

As in hftbacktest's `OrderBus`, a message's delivery time is never earlier than the one
queued before it (`max(ts, last ts)`): messages on one bus never overtake each other.
Each bus is a row array with a head and a tail in `cnt`; it is compacted when the tail
reaches the end. Callers keep headroom (`free_rows`) before a step that may push.
"""

import numba as nb

from trade_pipeline.trading.event.layout import NEVER


@nb.njit(cache=True)
def free_rows(cnt, rows_i, rows_f, head_i: int, tail_i: int) -> int:
    """Rows free at the tail, after compacting (moving the live rows to the front) when
    that frees at least half the bus."""
    head = cnt[head_i]
    tail = cnt[tail_i]
    cap = rows_i.shape[0]
    if cap - tail < cap // 2 and head > 0:
        n = tail - head
        for k in range(n):
            rows_i[k, :] = rows_i[head + k, :]
            rows_f[k, :] = rows_f[head + k, :]
        cnt[head_i] = 0
        cnt[tail_i] = n
        return cap - n
    return cap - tail


@nb.njit(cache=True)
def push(cnt, rows_i, head_i: int, tail_i: int, last_i: int, ts: int) -> int:
    """Append a row stamped max(ts, last); returns its index (fill the rest of the row)."""
    tail = cnt[tail_i]
    if ts < cnt[last_i]:
        ts = cnt[last_i]
    cnt[last_i] = ts
    rows_i[tail, 0] = ts
    cnt[tail_i] = tail + 1
    return tail


@nb.njit(cache=True, inline="always")
def head_ts(cnt, rows_i, head_i: int, tail_i: int) -> int:
    if cnt[head_i] == cnt[tail_i]:
        return NEVER
    return rows_i[cnt[head_i], 0]


@nb.njit(cache=True, inline="always")
def pop(cnt, head_i: int, tail_i: int) -> int:
    """Index of the head row; advances the head (empty bus: both reset to 0)."""
    head = cnt[head_i]
    cnt[head_i] = head + 1
    if head + 1 == cnt[tail_i]:
        cnt[head_i] = 0
        cnt[tail_i] = 0
    return head
