"""Scripted orders: a user's own order list run through the event engine, for hand checks.

ORDERS (Parquet) columns:
- `timestamp` (UTC): when the order is sent (our clock; it reaches the exchange after the
  entry latency);
- `order_id` (string): a new order's id, or the id a cancel refers to;
- `action`: `limit` | `market` | `cancel`;
- `side`: `buy` | `sell` (null for a cancel);
- `price`: the limit price (null for market orders and cancels);
- `qty`: the quantity (null for a cancel);
- optional `post_only` (bool): a post-only limit order (rejected if it would cross).

Rows run in time order (file order among equal times). A request the engine refuses (a
cancel of an order that has already ended, a quantity that is not a whole number of lots, a
price off the tick grid...) is reported in `refused` with its reason; a malformed file is
an error naming the first bad row.
"""

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from trade_pipeline.errors import TradePipelineError

ACTIONS = ("limit", "market", "cancel")
REQUIRED = ("timestamp", "order_id", "action", "side", "price", "qty")


class OrdersFileError(TradePipelineError, ValueError):
    """The ORDERS file cannot be run as written."""


@dataclass
class ScriptedOrder:
    row: int
    t_ns: int
    order_id: str
    action: str
    side: int
    price: float | None
    qty: float | None
    post_only: bool


def read_orders(path: str | Path) -> list[ScriptedOrder]:
    path = Path(path)
    if not path.exists():
        raise OrdersFileError(f"orders file {path} does not exist")
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for a file that is not Parquet
        raise OrdersFileError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    return parse_orders(frame, str(path))


def parse_orders(frame: pl.DataFrame, name: str = "orders") -> list[ScriptedOrder]:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise OrdersFileError(f"{name}: missing columns {missing}; need {list(REQUIRED)}")
    ts = frame["timestamp"]
    if not isinstance(ts.dtype, pl.Datetime):
        raise OrdersFileError(f"{name}: timestamp must be a UTC datetime column, got {ts.dtype}")
    if ts.dtype.time_zone not in (None, "UTC"):
        raise OrdersFileError(f"{name}: timestamp must be in UTC, got time zone {ts.dtype.time_zone}")
    t_ns = ts.dt.cast_time_unit("ns").dt.epoch("ns").to_list()
    post = frame["post_only"].to_list() if "post_only" in frame.columns else [False] * frame.height
    out = []
    seen: set[str] = set()
    rows = frame.select("order_id", "action", "side", "price", "qty").iter_rows()
    for i, ((oid, action, side, price, qty), t, po) in enumerate(zip(rows, t_ns, post, strict=True)):
        where = f"{name}: row {i}"
        if t is None:
            raise OrdersFileError(f"{where}: timestamp is null")
        if oid is None or str(oid) == "":
            raise OrdersFileError(f"{where}: order_id is empty")
        oid = str(oid)
        if action not in ACTIONS:
            raise OrdersFileError(f"{where}: action must be one of {ACTIONS}, got {action!r}")
        if action == "cancel":
            if side is not None or price is not None or qty is not None:
                raise OrdersFileError(f"{where}: a cancel has null side, price and qty")
            out.append(ScriptedOrder(i, t, oid, action, 0, None, None, False))
            continue
        if side not in ("buy", "sell"):
            raise OrdersFileError(f"{where}: side must be buy or sell, got {side!r}")
        if qty is None or not qty > 0:
            raise OrdersFileError(f"{where}: qty must be positive, got {qty!r}")
        if action == "limit" and (price is None or not price > 0):
            raise OrdersFileError(f"{where}: a limit order needs a positive price, got {price!r}")
        if action == "market" and price is not None:
            raise OrdersFileError(f"{where}: a market order has no price (null), got {price!r}")
        if oid in seen:
            raise OrdersFileError(f"{where}: order_id {oid!r} is used by an earlier order")
        seen.add(oid)
        out.append(ScriptedOrder(i, t, oid, action, 1 if side == "buy" else -1,
                                 None if price is None else float(price), float(qty), bool(po)))
    out.sort(key=lambda o: (o.t_ns, o.row))
    return out


def run_orders(engine, orders: list[ScriptedOrder]) -> list[dict]:
    """Send each order at its time; returns the refused ones. Ids map to ints by first use."""
    from trade_pipeline.trading.event.engine import OrderRefused

    ids: dict[str, int] = {}
    refused = []
    for o in orders:
        engine.run_until(o.t_ns)
        try:
            if o.action == "cancel":
                if o.order_id not in ids:
                    raise OrderRefused("unknown order id")
                engine.cancel(ids[o.order_id])
            else:
                ids[o.order_id] = len(ids) + 1
                if o.action == "limit":
                    engine.submit_limit(ids[o.order_id], o.side, o.price, o.qty, post_only=o.post_only)
                else:
                    engine.submit_market(ids[o.order_id], o.side, o.qty)
        except OrderRefused as exc:
            refused.append({"row": o.row, "order_id": o.order_id, "action": o.action, "reason": str(exc)})
    engine.run_to_end()
    engine.id_names = {v: k for k, v in ids.items()}
    return refused
