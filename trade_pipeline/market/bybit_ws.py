"""Bybit v5 public WebSocket protocol: requests, control frames and order-book pushes.

Shared by the collector (client side), the replay server and the simulator (server side),
so both ends speak exactly one wire format (docs/DATA_FORMATS.md format 1):

- client -> server: `{"req_id": .., "op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}`,
  `{"req_id": .., "op": "ping"}` every 20 s;
- server -> client, control: subscribe ack `{"success": true, "ret_msg": "", "conn_id": ..,
  "req_id": .., "op": "subscribe"}` (success false + ret_msg on error), pong
  `{"success": true, "ret_msg": "pong", "conn_id": .., "req_id": .., "op": "ping"}`;
- server -> client, data: `{"topic", "type": "snapshot"|"delta", "ts", "data": {"s", "b",
  "a", "u", "seq"}, "cts"}` with prices and sizes as decimal strings.
"""

from dataclasses import dataclass
from enum import Enum

import orjson

from trade_pipeline.settings import check_symbol

DEFAULT_DEPTH = 50
PING_INTERVAL_S = 20.0
VALID_DEPTHS = (1, 50, 200, 500)


def orderbook_topic(symbol: str, depth: int = DEFAULT_DEPTH) -> str:
    if depth not in VALID_DEPTHS:
        raise ValueError(f"orderbook depth must be one of {VALID_DEPTHS}, got {depth}")
    return f"orderbook.{depth}.{check_symbol(symbol)}"


def subscribe_request(topics: list[str], req_id: str = "") -> str:
    return orjson.dumps({"req_id": req_id, "op": "subscribe", "args": topics}).decode()


def ping_request(req_id: str = "") -> str:
    return orjson.dumps({"req_id": req_id, "op": "ping"}).decode()


def subscribe_ack(conn_id: str, req_id: str = "", success: bool = True, ret_msg: str = "") -> str:
    return orjson.dumps(
        {"success": success, "ret_msg": ret_msg, "conn_id": conn_id, "req_id": req_id,
         "op": "subscribe"}
    ).decode()


def pong_reply(conn_id: str, req_id: str = "") -> str:
    return orjson.dumps(
        {"success": True, "ret_msg": "pong", "conn_id": conn_id, "req_id": req_id, "op": "ping"}
    ).decode()


def push_frame(
    topic: str,
    kind: str,
    ts_ms: int,
    cts_ms: int,
    symbol: str,
    bids: list[tuple[str, str]] | list[list[str]],
    asks: list[tuple[str, str]] | list[list[str]],
    u: int,
    seq: int,
) -> str:
    """One order-book push in Bybit's key order (topic, type, ts, data, cts)."""
    return orjson.dumps(
        {"topic": topic, "type": kind, "ts": ts_ms,
         "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq}, "cts": cts_ms}
    ).decode()


class FrameKind(Enum):
    DATA = "data"
    PONG = "pong"
    SUBSCRIBE_ACK = "subscribe_ack"
    ERROR = "error"  # a control reply with success false
    OTHER = "other"  # valid JSON we do not use (stored nowhere, counted)
    INVALID = "invalid"  # not a JSON object


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    topic: str | None = None
    push_type: str | None = None  # snapshot | delta
    u: int | None = None
    ts_ms: int | None = None
    message: str = ""  # ret_msg for control frames, the parse error for INVALID


def classify(text: str | bytes) -> Frame:
    """Parse one server frame just enough to route it (data vs control) and track `u`."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Frame(FrameKind.INVALID, message=str(exc))
    if not isinstance(obj, dict):
        return Frame(FrameKind.INVALID, message="not a JSON object")
    if "topic" in obj and isinstance(obj.get("data"), dict):
        data = obj["data"]
        u = data.get("u")
        return Frame(
            FrameKind.DATA,
            topic=obj["topic"],
            push_type=obj.get("type"),
            u=u if isinstance(u, int) else None,
            ts_ms=obj.get("ts") if isinstance(obj.get("ts"), int) else None,
        )
    op = obj.get("op")
    ok = obj.get("success", True) is not False
    msg = str(obj.get("ret_msg", ""))
    if not ok:
        return Frame(FrameKind.ERROR, message=f"{op}: {msg}")
    if op == "ping" or op == "pong" or msg == "pong":
        return Frame(FrameKind.PONG, message=msg)
    if op == "subscribe":
        return Frame(FrameKind.SUBSCRIBE_ACK, message=msg)
    return Frame(FrameKind.OTHER, message=str(op))


class SequenceTracker:
    """Counts update-id gaps on one topic: a delta whose `u` is not the previous `u` + 1.

    A snapshot (or `u == 1`, Bybit's service restart) resets the chain; a delta before any
    snapshot is counted separately (it cannot be checked)."""

    __slots__ = ("deltas_before_snapshot", "gaps", "last_u", "snapshots")

    def __init__(self) -> None:
        self.last_u: int | None = None
        self.gaps = 0
        self.snapshots = 0
        self.deltas_before_snapshot = 0

    def reset(self) -> None:
        """A new connection: the chain restarts at its first snapshot."""
        self.last_u = None

    def observe(self, push_type: str | None, u: int | None) -> bool:
        """Track one push; True when it is a gap."""
        if push_type == "snapshot" or u == 1:
            self.snapshots += 1
            self.last_u = u
            return False
        if self.last_u is None or u is None:
            self.deltas_before_snapshot += 1
            return False
        gap = u != self.last_u + 1
        self.gaps += gap
        self.last_u = u
        return gap
