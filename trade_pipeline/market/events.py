"""The raw event stream the event-level backtest and paper trading consume.

Book changes and trades in order of receipt, one 64-byte record each, in the layout
hftbacktest uses (its `event_dtype` and flag bits), so one stream feeds our engine and the
reference engine the benchmarks compare it with:

- `ev`: the event type (low bits) | side flag | which clocks the event is visible on.
  `DEPTH_EVENT` sets the total size at a price level (`qty` 0 deletes it);
  `DEPTH_CLEAR_EVENT` empties one side (a snapshot follows as `DEPTH_SNAPSHOT_EVENT`s);
  `TRADE_EVENT` is a public trade (`BUY_EVENT`: the taker bought, lifting asks).
- `exch_ts` / `local_ts`: the exchange's time of record and our receive time, in
  nanoseconds since the epoch (UTC).
- `px`, `qty`: price and size; `order_id`, `ival`, `fval`: unused here (0).

Only the layout lives here; the builders that turn captures into streams sit beside the
readers that parse them.
"""

import numpy as np

EVENT_DTYPE = np.dtype(
    {
        "names": ["ev", "exch_ts", "local_ts", "px", "qty", "order_id", "ival", "fval"],
        "formats": ["<u8", "<i8", "<i8", "<f8", "<f8", "<u8", "<i8", "<f8"],
        "offsets": [0, 8, 16, 24, 32, 40, 48, 56],
        "itemsize": 64,
    },
    align=True,
)

DEPTH_EVENT = 1
TRADE_EVENT = 2
DEPTH_CLEAR_EVENT = 3
DEPTH_SNAPSHOT_EVENT = 4

BUY_EVENT = 1 << 29  # bid side for depth events; the taker bought, for trades
SELL_EVENT = 1 << 28  # ask side for depth events; the taker sold, for trades
LOCAL_EVENT = 1 << 30  # seen by our receive clock (strategy side)
EXCH_EVENT = 1 << 31  # seen by the exchange (matching side)
BOTH_CLOCKS = EXCH_EVENT | LOCAL_EVENT

EVENT_TYPE_MASK = 0xFF
