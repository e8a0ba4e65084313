"""docs/FEATURES_REFERENCE.md, generated from the catalog (never edited by hand).

The page is the project's definition of the 118 features: the conventions every definition
relies on, the parameters, and per feature its formula (the catalog's `definition`), unit,
warm-up, parameters and version. The formulas come from the catalog, so they are what the
code's feature versions are fingerprinted from; the prose here only explains them.
"""

import json
import re
import textwrap
from pathlib import Path

from trade_pipeline.features.catalog import (
    CATALOG,
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    GROUPS,
    REFERENCE_CADENCE_MS,
    FeatureSpec,
    catalog_hash,
)
from trade_pipeline.settings import SettingsError

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "FEATURES_REFERENCE.md"

CONVENTIONS = [
    "Input: the canonical `l2_snapshots` stream ([DATA_FORMATS.md](DATA_FORMATS.md)): one "
    "row per grid "
    "time, top 10 levels per side, `session_id`. Rows are processed in timestamp order within "
    "each `(exchange, symbol)`.",
    "Level `i` (1..10): `bp_i, bq_i` = `bid_price_i, bid_size_i`; `ap_i, aq_i` = "
    "`ask_price_i, ask_size_i`. A missing level has null price and size 0.",
    "`mid = (bp_1 + ap_1) / 2`. `B_k = sum_{i<=k} bq_i`, `A_k = sum_{i<=k} aq_i` (cumulative "
    "depth of the first k levels).",
    "`d_i` (distance of a level from the mid, in basis points) = `|price_i - mid| / mid * 1e4`.",
    "Windows are **time windows**, never row counts: the window `w` at a row with time `t` "
    "holds the rows of the **same session** whose timestamp is in `(t - w, t]` (the row itself "
    "included). Where a name carries a row count `N` (e.g. `l2_volatility_50`), the window is "
    f"`N x {REFERENCE_CADENCE_MS} ms` (the reference cadence), whatever cadence the stream was "
    "sampled at.",
    "\"Consecutive rows\" means a row and the previous row of the same session. The first row "
    "of a session has no previous row.",
    "A division by zero, a missing operand, or a statistic with too few values gives **null**. "
    "No 0 or 1 is ever substituted for a denominator, and no null is filled from a later row.",
    "`std` is the sample standard deviation (ddof = 1): null with fewer than 2 values.",
    "Tunable parameters have the defaults below; their values are part of each feature's "
    "version, recorded in the warehouse's `feature_metadata.calculation_params`.",
]

PARAMETERS = {
    "delta_bp": ("basis points", "distance scale of `bid_pressure` / `ask_pressure`: a level "
                 "`delta` bp from the mid counts half"),
    "lambda_bp": ("basis points", "decay length of the `_weighted` pressures: a level "
                  "`lambda` bp from the mid counts `1/e`"),
    "impact_qty": ("base units (BTC)", "`Q`, the market order size of `price_impact_buy` / "
                   "`price_impact_sell`"),
    "ofi_levels": ("levels", "`L`, the book levels combined in `ofi_weighted_W` (weights "
                   "`1/m`)"),
}

GROUP_TITLES = {
    "raw_book": "Raw book",
    "microstructure": "Basic microstructure",
    "price_impact": "Price impact",
    "cumulative_depth": "Cumulative depth",
    "returns_volatility": "Returns and volatility",
    "order_flow_imbalance": "Order flow imbalance",
    "pressure": "Book pressure",
    "stability": "Stability",
}

GROUP_NOTES = {
    "raw_book": "The snapshot's own values. Raw prices are non-stationary: training may leave "
    "them out of the model's inputs (it records which columns it used), but the feature tables "
    "always carry all 118 columns.",
    "microstructure": "Level-1 and top-of-book quantities of one row; no history.",
    "price_impact": "What trading against the visible book would cost, as a fraction of the "
    "mid. `VWAP_buy(Q)` walks the ask levels from `ap_1` up until `Q` base units are filled "
    "(the last level partly); `VWAP_sell(Q)` walks the bids from `bp_1` down.",
    "cumulative_depth": "`total_bid_volume_10` / `total_ask_volume_10` are in the basic "
    "microstructure group; these are the shallower sums.",
    "returns_volatility": "Simple returns of the mid between consecutive rows, and their "
    "sample std over time windows.",
    "order_flow_imbalance": "Per Cont, Kukanov and Stoikov (2014), \"The price impact of order "
    "book events\", eq. 10, at level 1, over consecutive rows `n-1 -> n` of a session:\n\n"
    "```\ne_n = bq_n * 1[bp_n >= bp_{n-1}] - bq_{n-1} * 1[bp_n <= bp_{n-1}]\n"
    "    - aq_n * 1[ap_n <= ap_{n-1}] + aq_{n-1} * 1[ap_n >= ap_{n-1}]\n```\n\n"
    "`e` of a session's first row is 0. The same formula on level `m` (its price and size) "
    "gives `e^m_n`; where either row lacks level `m`, `e^m_n = 0`.\n\n"
    "Golden vector (level 1, consecutive rows, a test holds it): `bp = [100, 100, 100.5, "
    "100.5, 100, 100]`, `bq = [5, 7, 2, 1, 9, 9]`, `ap = [101, 101, 101, 101.5, 101.5, 101]`, "
    "`aq = [4, 4, 3, 6, 6, 2]` gives `e = [0, 2, 3, 2, -1, -2]` and a window sum of 4.",
    "pressure": "Depth weighted by its distance `d_i` from the mid (basis points), so liquidity "
    "near the mid counts most. Missing levels contribute nothing.",
    "stability": "How long quotes live and how steady the spread, depth and book shape are. "
    "The quote lifetimes look back to the last change of the best price, however far back in "
    "the session it lies.",
}

WARMUP_TEXT = """\
Every feature of a row depends only on rows of its own session, never on a later row:

- **none**: the row itself (all single-row features).
- **previous row**: `mid_price_return` is null, and `e_n` is 0, on a session's first row.
- **window w**: the window holds the session's rows in `(t - w, t]`; during the first `w`
  of a session it holds fewer rows (the statistic is computed on what is there, and is null
  where the definition needs more values, e.g. a std of fewer than 2). The longest window is
  5 minutes (`ofi_*_5m`).
- **since change**: the quote lifetimes count from the latest change of the best price, or
  from the session's first row when it never changed.

Across partitions: a daily `l2_features` partition is warmed up exactly from the previous
days' `l2_snapshots` of its first session (`trade_pipeline/features/warmup.py`: the rows of
the last 5 minutes before the day plus the latest best-price changes), so a day computed
alone equals the same day computed inside a longer range. The `l2_features` quality check
allows nulls only where this page allows them (`trade_pipeline/features/quality.py`): in the
warm-up of `mid_price_return`, `l2_volatility_*` and `spread_stability_*`, and where the book
itself lacks the operand (missing levels, a side thinner than `Q`).

Both engines, batch (`features/batch.py`, a whole stream) and online (`features/online.py`,
one row at a time), run the same kernel (`features/kernels.py`) and agree to floating-point
round-off.
"""

# Units, by name pattern (first match wins). `test_every_feature_has_a_unit` keeps it total.
UNITS: list[tuple[str, str]] = [
    (r"^(bid|ask)_price_\d+$", "quote currency (USDT)"),
    (r"^(bid|ask)_size_\d+$", "base units (BTC)"),
    (r"^(mid_price|spread|bid_ask_spread|microprice|weighted_mid_price|weighted_(bid|ask)_price)$",
     "quote currency (USDT)"),
    (r"^spread_bps$", "basis points"),
    (r"^bid_ask_spread_pct$", "percent"),
    (r"^total_(bid|ask)_volume_\d+$", "base units (BTC)"),
    (r"^(order_book_imbalance(_\d+)?|pressure_imbalance(_weighted)?|book_depth_asymmetry)$",
     "ratio in [-1, 1]"),
    (r"^price_impact_", "fraction of the mid"),
    (r"^mid_price_return$", "fraction (simple return)"),
    (r"^l2_volatility_\d+$", "fraction (std of per-row returns)"),
    (r"^ofi_normalized_", "ratio (OFI / mean level-1 depth)"),
    (r"^ofi_", "base units (BTC)"),
    (r"^(bid|ask)_pressure(_weighted)?$", "base units (BTC), distance-weighted"),
    (r"^(bid_|ask_)?quote_lifetime$", "seconds"),
    (r"^book_resilience$", "ratio (1 = average depth)"),
    (r"^spread_stability_norm_\d+$", "ratio (coefficient of variation)"),
    (r"^spread_stability_\d+$", "basis points"),
    (r"^book_shape_(1_5|stability)$", "ratio"),
    (r"^(bid_|ask_)?volume_concentration$", "share in [0, 1]"),
]


# Explanations shown under a definition (not part of it: the catalog's text is the formula).
FEATURE_NOTES = {
    "book_resilience": "below 1 right after depth is taken out, back towards 1 as the book "
    "refills",
    "bid_ask_spread": "the same value as `spread`",
    "price_impact_buy": "a thin book gives null, never a guessed price",
    "book_shape_1_5": "null when level 5 is missing on a side (size 0)",
}


def unit(spec: FeatureSpec) -> str:
    for pattern, text in UNITS:
        if re.search(pattern, spec.name):
            return text
    raise KeyError(f"no unit for feature {spec.name!r}: add a pattern to UNITS")


def _seconds(value: float) -> str:
    if value >= 60 and value % 60 == 0:
        return f"{int(value // 60)} min"
    return f"{value:g} s"


def warmup(spec: FeatureSpec) -> str:
    window = spec.params.get("window_s")
    if spec.name.endswith("quote_lifetime"):
        return "since change"
    if window is not None:
        extra = "; previous row" if spec.name.startswith("ofi") else ""
        return f"window {_seconds(window)}{extra}"
    if spec.name == "mid_price_return":
        return "previous row"
    return "none"


def _params(spec: FeatureSpec) -> str:
    shown = {k: v for k, v in spec.params.items() if k != "window_s"}
    return json.dumps(shown, sort_keys=True) if shown else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    lines = [
        "# Feature reference: the 118 L2 features",
        "",
        "Generated from `trade_pipeline/features/catalog.py` (and the notes in "
        "`trade_pipeline/features/reference.py`) by `trade-pipeline features-reference`; do not "
        "edit by hand. This page is the definition of the features: the model is trained on "
        "exactly these columns, in this order; their names are fixed (dashboards and models "
        "refer to them); batch and online computation both implement this page. A changed "
        "definition or parameter always comes with a higher feature version "
        "(`catalog.lock.json`).",
        "",
        f"- Features: {len(CATALOG)}, in training order below.",
        f"- Catalog hash: `{catalog_hash()}`",
        f"- Parameters: `{json.dumps(dict(DEFAULT_PARAMS), sort_keys=True)}`",
        "",
        "## Conventions",
        "",
        *[f"- {c}" for c in CONVENTIONS],
        "",
        "## Parameters",
        "",
        "| parameter | default | unit | meaning | used by |",
        "|---|---|---|---|---|",
    ]
    for name, default in DEFAULT_PARAMS.items():
        unit_text, meaning = PARAMETERS[name]
        users = [s.name for s in CATALOG if name in s.params]
        lines.append(f"| `{name}` | {default} | {unit_text} | {meaning} | "
                     f"{', '.join(f'`{u}`' for u in users)} |")
    lines += ["", "## Warm-up", "", WARMUP_TEXT.rstrip(), ""]
    for number, group in enumerate(GROUPS, 1):
        specs = [s for s in CATALOG if s.group == group]
        lines += [f"## {number}. {GROUP_TITLES[group]} ({len(specs)}, group `{group}`)", "",
                  GROUP_NOTES[group], "",
                  "| # | name | definition | unit | warm-up | params | version |",
                  "|---|---|---|---|---|---|---|"]
        for s in specs:
            idx = CATALOG.index(s) + 1
            note = f" ({FEATURE_NOTES[s.name]})" if s.name in FEATURE_NOTES else ""
            lines.append(f"| {idx} | `{s.name}` | {_cell(s.definition + note)} | {unit(s)} | "
                         f"{warmup(s)} | {_params(s)} | {s.version} |")
        lines.append("")
    counts = " + ".join(str(sum(s.group == g for s in CATALOG)) for g in GROUPS)
    lines += [
        "## Count and training order",
        "",
        f"{counts} = {len(CATALOG)}.",
        "",
        "```",
        *textwrap.wrap(" ".join(FEATURE_NAMES), width=95, break_on_hyphens=False),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_reference(path: Path | None = None) -> Path:
    """Write the page to `path`; by default into the source checkout's docs/ (an installed
    package has none: then a path must be given)."""
    from trade_pipeline.storage.atomic import write_text_atomic

    if path is None:
        if not (DEFAULT_PATH.parents[1] / "pyproject.toml").is_file():
            raise SettingsError(f"{DEFAULT_PATH.parents[1]} is not a source checkout: "
                                "give --output PATH")
        path = DEFAULT_PATH
    path = Path(path)
    write_text_atomic(render(), path, what="--output")
    return path
