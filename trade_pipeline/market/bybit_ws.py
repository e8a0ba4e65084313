"""Bybit v5 public WebSocket protocol: requests, control frames and order-book pushes.

Shared by the collector (client side), the replay server and the simulator (server side),
so both ends speak exactly one wire format (docs/DATA_FORMATS.md format 1):

- client -> server: `{"req_id": .., "op": "subscribe", "args": ["orderbook.50.BTCUSDT",
  "publicTrade.BTCUSDT"]}` (and `"op": "unsubscribe"` alike), `{"req_id": .., "op": "ping"}`
  every 20 s;
- server -> client, control: subscribe ack `{"success": true, "ret_msg": "", "conn_id": ..,
  "req_id": .., "op": "subscribe"}` (success false + ret_msg on error), pong
  `{"success": true, "ret_msg": "pong", "conn_id": .., "req_id": .., "op": "ping"}`;
- server -> client, data: `{"topic", "type": "snapshot"|"delta", "ts", "data": {"s", "b",
  "a", "u", "seq"}, "cts"}` with prices and sizes as decimal strings; trades (docs/DATA_FORMATS.md 1b):
  `{"topic": "publicTrade.<S>", "type": "snapshot", "ts", "data": [{"T", "s", "S", "v",
  "p", "L", "i", "BT", "seq"}, ...]}`.
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


def trade_topic(symbol: str) -> str:
    return f"publicTrade.{check_symbol(symbol)}"


def subscribe_request(topics: list[str], req_id: str = "") -> str:
    return orjson.dumps({"req_id": req_id, "op": "subscribe", "args": topics}).decode()


def unsubscribe_request(topics: list[str], req_id: str = "") -> str:
    return orjson.dumps({"req_id": req_id, "op": "unsubscribe", "args": topics}).decode()


def ping_request(req_id: str = "") -> str:
    return orjson.dumps({"req_id": req_id, "op": "ping"}).decode()


def subscribe_ack(conn_id: str, req_id: str = "", success: bool = True, ret_msg: str = "",
                  op: str = "subscribe") -> str:
    return orjson.dumps(
        {"success": success, "ret_msg": ret_msg, "conn_id": conn_id, "req_id": req_id,
         "op": op}
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


def trade_push_frame(topic: str, ts_ms: int, trades: list[dict]) -> str:
    """One public-trade push (docs/DATA_FORMATS.md 1b): trades oldest first, each {T, s, S, v, p, L, i,
    BT, seq}."""
    return orjson.dumps({"topic": topic, "type": "snapshot", "ts": ts_ms, "data": trades}).decode()


def is_push(frame: str | bytes) -> bool:
    """A data push (Bybit puts "topic" first), as opposed to a pong or an ack: cheap enough
    for every frame."""
    head = frame[:24]
    return (b'"topic"' in head) if isinstance(head, bytes) else ('"topic"' in head)


def is_book_push(frame: str | bytes) -> bool:
    """A push of an `orderbook.*` topic (not a trade push, a pong or an ack), as cheaply."""
    head = frame[:32]
    return (b'"topic":"orderbook.' in head) if isinstance(head, bytes) else ('"topic":"orderbook.' in head)


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
    req_id: str = ""  # control frames: the request they answer
    op: str = ""  # control frames: subscribe, unsubscribe, ping


def classify(text: str | bytes) -> Frame:
    """Parse one server frame just enough to route it (data vs control) and track `u`."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return Frame(FrameKind.INVALID, message=str(exc))
    if not isinstance(obj, dict):
        return Frame(FrameKind.INVALID, message="not a JSON object")
    data = obj.get("data")
    if "topic" in obj and isinstance(data, dict | list):
        u = data.get("u") if isinstance(data, dict) else None
        ts = obj.get("ts")
        return Frame(
            FrameKind.DATA,
            topic=obj["topic"],
            push_type=obj.get("type"),
            u=u if type(u) is int else None,
            ts_ms=ts if type(ts) is int else None,
        )
    op = str(obj.get("op", ""))
    ok = obj.get("success", True) is not False
    msg = str(obj.get("ret_msg", ""))
    req_id = str(obj.get("req_id", ""))
    if not ok:
        return Frame(FrameKind.ERROR, message=f"{op}: {msg}", req_id=req_id, op=op)
    if op in ("ping", "pong") or msg == "pong":
        return Frame(FrameKind.PONG, message=msg, req_id=req_id, op=op)
    if op in ("subscribe", "unsubscribe"):
        return Frame(FrameKind.SUBSCRIBE_ACK, message=msg, req_id=req_id, op=op)
    return Frame(FrameKind.OTHER, message=op, req_id=req_id, op=op)


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
