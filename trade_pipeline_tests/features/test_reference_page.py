"""The generated feature reference is the project's feature definition: it covers every
feature (formula, unit, warm-up, params, version) and every parameter, and it agrees with the
quality gates about which features may be null while warming up."""

import pytest

from trade_pipeline.features.catalog import CATALOG, DEFAULT_PARAMS, FEATURE_NAMES, SPECS
from trade_pipeline.features.quality import WARMUP_NULLS
from trade_pipeline.features.reference import PARAMETERS, render, unit, warmup


def _rows(page: str) -> dict[str, list[str]]:
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) == 7 and cells[1].startswith("`"):
            rows[cells[1].strip("`")] = cells
    return rows


def test_every_feature_has_one_row_numbered_in_training_order() -> None:
    rows = _rows(render())  # grouped by catalog group; `#` is the training position
    assert sorted(rows) == sorted(FEATURE_NAMES) and len(rows) == len(FEATURE_NAMES)
    for name, (idx, _, definition, unit_text, warm, _params, version) in rows.items():
        spec = SPECS[name]
        assert int(idx) == FEATURE_NAMES.index(name) + 1
        assert definition.startswith(spec.definition.replace("|", "\\|"))
        assert unit_text == unit(spec) and warm == warmup(spec) and int(version) == spec.version


def test_units_are_total_and_parameters_documented() -> None:
    for spec in CATALOG:
        assert unit(spec)
    assert set(PARAMETERS) == set(DEFAULT_PARAMS)
    with pytest.raises(KeyError, match="no unit"):
        unit(type(CATALOG[0])("not_a_feature", "raw_book", "x"))


def test_warmup_column_agrees_with_the_quality_gate() -> None:
    for name, window_s in WARMUP_NULLS.items():
        text = warmup(SPECS[name])
        assert text != "none", name
        if window_s:
            assert SPECS[name].params["window_s"] == window_s and text.startswith("window")
    for spec in CATALOG:
        if "window_s" in spec.params:
            assert warmup(spec).startswith("window"), spec.name


def test_the_page_stands_alone() -> None:
    page = render()
    for needle in ("## Conventions", "## Parameters", "## Warm-up", "(t - w, t]", "ddof = 1",
                   "e_n = bq_n", "[DATA_FORMATS.md](DATA_FORMATS.md)"):
        assert needle in page, needle
    assert "FEATURES.md" not in page.replace("FEATURES_REFERENCE.md", "")
