"""The online feature store in Redis: the latest features per symbol, with a TTL.

One hash per (exchange, symbol) at `<prefix>:features:<exchange>:<symbol>`:
`timestamp` (ISO 8601 UTC), `timestamp_us`, `model_version`, `n_features`, and `features`
(a JSON object name -> value; a missing value is null, never 0). The TTL makes a stopped
feed disappear instead of serving stale values.
"""

import datetime as dt
import math
import re

import orjson

from trade_pipeline.settings import SettingsError, check_exchange, check_symbol

PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class OnlineStore:
    def __init__(self, client, prefix: str, names: list[str], ttl_s: float = 30.0):
        if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
            raise SettingsError(f"invalid key prefix {prefix!r}")
        if ttl_s <= 0:
            raise SettingsError(f"online store TTL must be positive, got {ttl_s}")
        self.client = client
        self.prefix = prefix
        self.names = list(names)
        self.ttl_ms = int(ttl_s * 1000)
        self.writes = 0

    @classmethod
    def from_url(cls, url: str, prefix: str, names: list[str], ttl_s: float = 30.0) -> "OnlineStore":
        import redis

        return cls(redis.Redis.from_url(url), prefix, names, ttl_s)

    def key(self, exchange: str, symbol: str) -> str:
        return f"{self.prefix}:features:{check_exchange(exchange)}:{check_symbol(symbol)}"

    def put(self, exchange: str, symbol: str, ts_us: int, values, model_version: str) -> None:
        if len(values) != len(self.names):
            raise ValueError(f"expected {len(self.names)} feature values, got {len(values)}")
        feats = {n: (None if v is None or not math.isfinite(v) else float(v))
                 for n, v in zip(self.names, values, strict=True)}
        key = self.key(exchange, symbol)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={
            "timestamp": dt.datetime.fromtimestamp(ts_us / 1e6, dt.UTC).isoformat(),
            "timestamp_us": ts_us,
            "model_version": model_version,
            "n_features": len(self.names),
            "features": orjson.dumps(feats),
        })
        pipe.pexpire(key, self.ttl_ms)
        pipe.execute()
        self.writes += 1

    def get(self, exchange: str, symbol: str) -> dict | None:
        raw = self.client.hgetall(self.key(exchange, symbol))
        if not raw:
            return None
        d = {k.decode(): v for k, v in raw.items()}
        return {
            "timestamp": d["timestamp"].decode(),
            "timestamp_us": int(d["timestamp_us"]),
            "model_version": d["model_version"].decode(),
            "n_features": int(d["n_features"]),
            "features": orjson.loads(d["features"]),
        }
