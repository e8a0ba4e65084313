"""The feature catalog: the single source of the 118 features (their definitions:
docs/FEATURES_REFERENCE.md, generated from this module).

Every other part derives from it: the kernel's output order (`kernels.py`), the batch and
online engines, the warehouse's `feature_metadata` rows and docs/FEATURES_REFERENCE.md.

Versioning: each spec carries an integer `version`. `catalog.lock.json` (next to this file)
records, per feature, the version and a fingerprint of its definition and params; a test
fails when a fingerprint changes while the version did not go up, so a changed definition or
parameter always comes with a higher version. `catalog_hash()` covers every spec and the
engine parameters, so it changes with any definition or parameter.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

# Engine parameters (docs/FEATURES_REFERENCE.md, 'Parameters'). Their values are part of every feature version
# that uses them (`FeatureSpec.params` names which).
DEFAULT_PARAMS: MappingProxyType = MappingProxyType(
    {
        "delta_bp": 0.1,  # book pressure distance scale, basis points
        "lambda_bp": 0.5,  # weighted book pressure decay, basis points
        "impact_qty": 1.0,  # Q: market order size for price_impact_buy/sell, base units
        "ofi_levels": 5,  # levels in ofi_weighted_W (weights 1/m)
    }
)

REFERENCE_CADENCE_MS = 100  # N-row names mean N x 100 ms, whatever the sampling cadence

LOCK_FILE = Path(__file__).with_name("catalog.lock.json")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    group: str
    definition: str
    params: dict = field(default_factory=dict)  # window lengths and engine params used
    version: int = 1
    active: bool = True

    def fingerprint(self) -> str:
        """Hash of what the feature means (definition + params), not of its version."""
        payload = json.dumps(
            {"name": self.name, "group": self.group, "definition": self.definition,
             "params": self.params},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _raw_book() -> list[FeatureSpec]:
    specs = []
    for side in ("bid", "ask"):
        for i in range(1, 11):
            specs.append(FeatureSpec(
                f"{side}_price_{i}", "raw_book",
                f"{side} price at level {i} of the snapshot (null if the level is missing)"))
            specs.append(FeatureSpec(
                f"{side}_size_{i}", "raw_book",
                f"{side} size at level {i} of the snapshot (0 if the level is missing)"))
    return specs


def _window(seconds: float) -> dict:
    return {"window_s": seconds}


def _derived() -> list[FeatureSpec]:
    """Features after the raw book, in training order."""
    q, lam, dlt = ["impact_qty"], ["lambda_bp"], ["delta_bp"]
    S = FeatureSpec
    micro = "microstructure"
    out = [
        S("mid_price", micro, "mid = (bp_1 + ap_1) / 2"),
        S("spread", micro, "ap_1 - bp_1"),
        S("spread_bps", micro, "spread / mid * 1e4"),
        S("total_bid_volume_10", micro, "B_10 = sum_{i<=10} bq_i"),
        S("total_ask_volume_10", micro, "A_10 = sum_{i<=10} aq_i"),
        S("weighted_bid_price", micro, "sum_{i<=10} bp_i * bq_i / B_10"),
        S("weighted_ask_price", micro, "sum_{i<=10} ap_i * aq_i / A_10"),
        S("order_book_imbalance", micro, "(bq_1 - aq_1) / (bq_1 + aq_1)"),
        S("microprice", micro, "(bp_1 * aq_1 + ap_1 * bq_1) / (bq_1 + aq_1)"),
        S("price_impact_bid", "price_impact", "(microprice - bp_1) / mid"),
        S("price_impact_ask", "price_impact", "(ap_1 - microprice) / mid"),
        S("bid_ask_spread", micro, "spread (kept for compatibility)"),
        S("bid_ask_spread_pct", micro, "spread / mid * 100 (percent)"),
        S("weighted_mid_price", micro, "(bp_1 * bq_1 + ap_1 * aq_1) / (bq_1 + aq_1)"),
    ]
    for k in (2, 3, 5):
        out.append(S(f"order_book_imbalance_{k}", micro,
                     f"(B_{k} - A_{k}) / (B_{k} + A_{k}), B_k = sum_{{i<=k}} bq_i, "
                     f"A_k = sum_{{i<=k}} aq_i", {"k": k}))
    for k in range(1, 10):
        out.append(S(f"total_bid_volume_{k}", "cumulative_depth", f"B_{k} = sum_{{i<={k}}} bq_i",
                     {"k": k}))
        out.append(S(f"total_ask_volume_{k}", "cumulative_depth", f"A_{k} = sum_{{i<={k}}} aq_i",
                     {"k": k}))
    out += [
        S("price_impact_buy", "price_impact",
          "(VWAP_buy(Q) - mid) / mid; VWAP_buy(Q) = average price of a market buy of Q base "
          "units filled level by level from ap_1 up; null if the 10 ask levels hold less than Q",
          {"uses": q}),
        S("price_impact_sell", "price_impact",
          "(mid - VWAP_sell(Q)) / mid; VWAP_sell(Q) = average price of a market sell of Q base "
          "units filled level by level from bp_1 down; null if the 10 bid levels hold less than Q",
          {"uses": q}),
    ]
    for k in (1, 5, 10):
        out.append(S(f"price_impact_{k}", "price_impact",
                     f"(VA_{k} - VB_{k}) / (2 * mid), VA_k = sum_{{i<=k}} ap_i aq_i / A_k, "
                     f"VB_k = sum_{{i<=k}} bp_i bq_i / B_k", {"k": k}))
    out.append(S("mid_price_return", "returns_volatility",
                 "mid_t / mid_prev - 1 over consecutive rows of a session; null on a session's "
                 "first row"))
    for n in (10, 50, 200):
        out.append(S(f"l2_volatility_{n}", "returns_volatility",
                     f"std (ddof=1) of mid_price_return over the time window {n} x 100 ms "
                     "(same session, (t - w, t]), nulls ignored; null with < 2 values",
                     _window(n * REFERENCE_CADENCE_MS / 1000)))
    e_def = ("e_n = bq_n 1[bp_n >= bp_{n-1}] - bq_{n-1} 1[bp_n <= bp_{n-1}] "
             "- aq_n 1[ap_n <= ap_{n-1}] + aq_{n-1} 1[ap_n >= ap_{n-1}] (level 1, consecutive "
             "rows of a session; 0 on a session's first row)")
    for label, seconds in (("10s", 10), ("30s", 30), ("1m", 60), ("5m", 300)):
        w = _window(seconds)
        out.append(S(f"ofi_{label}", "order_flow_imbalance",
                     f"sum of e_n over the rows in the time window {label}; {e_def}", w))
        out.append(S(f"ofi_normalized_{label}", "order_flow_imbalance",
                     f"ofi_{label} / D, D = mean over the same rows of (bq_1 + aq_1) / 2", w))
        out.append(S(f"ofi_weighted_{label}", "order_flow_imbalance",
                     f"sum_{{m=1..L}} (1/m) OFI^m / sum_{{m=1..L}} (1/m), OFI^m = sum of e^m_n "
                     f"(e_n on level m; 0 where either row lacks level m) over the window {label}",
                     {**w, "uses": ["ofi_levels"]}))
    press = "pressure"
    out += [
        S("bid_pressure", press,
          "sum_{i<=10} bq_i / (1 + d_i / delta), d_i = |bp_i - mid| / mid * 1e4; missing "
          "levels contribute nothing", {"uses": dlt}),
        S("bid_pressure_weighted", press,
          "sum_{i<=10} bq_i * exp(-d_i / lambda); missing levels contribute nothing",
          {"uses": lam}),
        S("ask_pressure", press,
          "sum_{i<=10} aq_i / (1 + d_i / delta), d_i = |ap_i - mid| / mid * 1e4; missing "
          "levels contribute nothing", {"uses": dlt}),
        S("ask_pressure_weighted", press,
          "sum_{i<=10} aq_i * exp(-d_i / lambda); missing levels contribute nothing",
          {"uses": lam}),
        S("pressure_imbalance", press,
          "(bid_pressure - ask_pressure) / (bid_pressure + ask_pressure)", {"uses": dlt}),
        S("pressure_imbalance_weighted", press,
          "(bid_pressure_weighted - ask_pressure_weighted) / (bid_pressure_weighted + "
          "ask_pressure_weighted)", {"uses": lam}),
        S("book_depth_asymmetry", press, "(B_10 - A_10) / (B_10 + A_10)"),
    ]
    stab = "stability"
    life = ("seconds since the best {side} price last changed: t - tau, tau = time of the "
            "latest row of the session (at or before t) whose {col} differs from its previous "
            "row's, or the session's first row if there is none")
    out += [
        S("bid_quote_lifetime", stab, life.format(side="bid", col="bp_1")),
        S("ask_quote_lifetime", stab, life.format(side="ask", col="ap_1")),
        S("quote_lifetime", stab, "(bid_quote_lifetime + ask_quote_lifetime) / 2"),
        S("book_resilience", stab,
          "D5_t / mean(D5) over the time window 30 s, D5 = B_5 + A_5", _window(30)),
    ]
    for n in (10, 50, 100):
        w = _window(n * REFERENCE_CADENCE_MS / 1000)
        out.append(S(f"spread_stability_{n}", stab,
                     f"std (ddof=1) of spread_bps over the time window {n} x 100 ms", w))
        out.append(S(f"spread_stability_norm_{n}", stab,
                     f"spread_stability_{n} / mean(spread_bps) over the same window", w))
    out += [
        S("book_shape_1_5", stab, "(bq_1 / bq_5 + aq_1 / aq_5) / 2"),
        S("book_shape_stability", stab,
          "std (ddof=1) of book_shape_1_5 over the time window 5 s, nulls ignored", _window(5)),
        S("bid_volume_concentration", stab, "bq_1 / B_5"),
        S("ask_volume_concentration", stab, "aq_1 / A_5"),
        S("volume_concentration", stab, "(bq_1 + aq_1) / (B_5 + A_5)"),
    ]
    return out


def _resolve_params(spec: FeatureSpec) -> FeatureSpec:
    """Replace the names in params['uses'] by their default values (so they are hashed)."""
    uses = spec.params.get("uses")
    if not uses:
        return spec
    params = {k: v for k, v in spec.params.items() if k != "uses"}
    params.update({name: DEFAULT_PARAMS[name] for name in uses})
    return FeatureSpec(spec.name, spec.group, spec.definition, params, spec.version, spec.active)


CATALOG: tuple[FeatureSpec, ...] = tuple(_resolve_params(s) for s in _raw_book() + _derived())
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in CATALOG)
FEATURE_INDEX: MappingProxyType = MappingProxyType({n: i for i, n in enumerate(FEATURE_NAMES)})
SPECS: MappingProxyType = MappingProxyType({s.name: s for s in CATALOG})
N_RAW = 40
N_FEATURES = len(CATALOG)
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(s.group for s in CATALOG))
KEY_COLUMNS: tuple[str, ...] = ("timestamp", "exchange", "symbol", "session_id")

assert N_FEATURES == 118, N_FEATURES
assert len(set(FEATURE_NAMES)) == N_FEATURES


def resolve_params(params: dict | None = None) -> dict:
    """Defaults overridden by `params`; unknown names or bad values raise ValueError."""
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            raise ValueError(f"unknown feature parameter {key!r}; known: {sorted(DEFAULT_PARAMS)}")
        merged[key] = value
    for key in ("delta_bp", "lambda_bp", "impact_qty"):
        v = merged[key]
        if (isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or v != v
                or v == float("inf")):
            raise ValueError(f"feature parameter {key} must be a positive finite number, got {v!r}")
    levels = merged["ofi_levels"]
    if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 10:
        raise ValueError(f"feature parameter ofi_levels must be an int in 1..10, got {levels!r}")
    return merged


def spec_params(spec: FeatureSpec, params: dict | None = None) -> dict:
    """The spec's params with engine parameters taken from `params` (defaults otherwise)."""
    merged = resolve_params(params)
    return {k: (merged[k] if k in DEFAULT_PARAMS else v) for k, v in spec.params.items()}


def catalog_hash(params: dict | None = None) -> str:
    """sha256 over every spec (name, group, definition, params, version) and the params."""
    merged = resolve_params(params)
    payload = json.dumps(
        [[s.name, s.group, s.definition, spec_params(s, merged), s.version, s.active]
         for s in CATALOG] + [merged],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def metadata_rows(params: dict | None = None) -> list[dict]:
    """Rows for the warehouse's `feature_metadata` table, in training order."""
    return [
        {
            "name": s.name,
            "group": s.group,
            "description": s.definition,
            "calculation_params": json.dumps(spec_params(s, params), sort_keys=True),
            "version": s.version,
            "active": s.active,
        }
        for s in CATALOG
    ]


def lock_entries() -> dict:
    """What catalog.lock.json records: per feature, version and fingerprint."""
    return {s.name: {"version": s.version, "fingerprint": s.fingerprint()} for s in CATALOG}
