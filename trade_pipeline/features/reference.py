"""docs/FEATURES_REFERENCE.md, generated from the catalog (never edited by hand)."""

import json
from pathlib import Path

from trade_pipeline.features.catalog import (
    CATALOG,
    DEFAULT_PARAMS,
    GROUPS,
    REFERENCE_CADENCE_MS,
    catalog_hash,
)

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "docs" / "FEATURES_REFERENCE.md"


def render() -> str:
    lines = [
        "# Feature reference",
        "",
        "Generated from `trade_pipeline/features/catalog.py` by "
        "`trade-pipeline features-reference`; do not edit by hand. The contract is "
        "FEATURES.md; this page lists what the code implements.",
        "",
        f"- Features: {len(CATALOG)}, in training order below.",
        f"- Catalog hash: `{catalog_hash()}`",
        f"- Parameters: `{json.dumps(dict(DEFAULT_PARAMS), sort_keys=True)}`",
        "- Windows are time windows `(t - w, t]` over rows of the same session; names with a "
        f"row count N mean N x {REFERENCE_CADENCE_MS} ms.",
        "- Nulls: division by zero, a missing operand or too few values give null; a "
        "session's first row has no previous row (`mid_price_return` null, `e` = 0).",
        "",
    ]
    for group in GROUPS:
        specs = [s for s in CATALOG if s.group == group]
        lines += [f"## {group} ({len(specs)})", "", "| # | name | definition | params | version |",
                  "|---|---|---|---|---|"]
        for s in specs:
            idx = CATALOG.index(s) + 1
            params = json.dumps(s.params, sort_keys=True) if s.params else ""
            definition = s.definition.replace("|", "\\|")
            lines.append(f"| {idx} | `{s.name}` | {definition} | {params} | {s.version} |")
        lines.append("")
    return "\n".join(lines)


def write_reference(path: Path = DEFAULT_PATH) -> Path:
    from trade_pipeline.storage.atomic import write_text_atomic

    path = Path(path)
    write_text_atomic(render(), path, what="--output")
    return path
