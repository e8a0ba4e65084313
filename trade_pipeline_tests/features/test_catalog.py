"""The catalog is the single source: names and order of FEATURES.md, versions, metadata."""

import json

import pytest

from trade_pipeline.features import catalog, kernels
from trade_pipeline.features.batch import compute_features, features_schema
from trade_pipeline_tests.features.books import frame, l1

# FEATURES.md, "The exact list, in training order" (copied verbatim: the contract).
FEATURES_MD_LIST = ["bid_price_1", "bid_size_1", "bid_price_2", "bid_size_2", "bid_price_3", "bid_size_3", "bid_price_4", "bid_size_4", "bid_price_5", "bid_size_5", "bid_price_6", "bid_size_6", "bid_price_7", "bid_size_7", "bid_price_8", "bid_size_8", "bid_price_9", "bid_size_9", "bid_price_10", "bid_size_10", "ask_price_1", "ask_size_1", "ask_price_2", "ask_size_2", "ask_price_3", "ask_size_3", "ask_price_4", "ask_size_4", "ask_price_5", "ask_size_5", "ask_price_6", "ask_size_6", "ask_price_7", "ask_size_7", "ask_price_8", "ask_size_8", "ask_price_9", "ask_size_9", "ask_price_10", "ask_size_10", "mid_price", "spread", "spread_bps", "total_bid_volume_10", "total_ask_volume_10", "weighted_bid_price", "weighted_ask_price", "order_book_imbalance", "microprice", "price_impact_bid", "price_impact_ask", "bid_ask_spread", "bid_ask_spread_pct", "weighted_mid_price", "order_book_imbalance_2", "order_book_imbalance_3", "order_book_imbalance_5", "total_bid_volume_1", "total_ask_volume_1", "total_bid_volume_2", "total_ask_volume_2", "total_bid_volume_3", "total_ask_volume_3", "total_bid_volume_4", "total_ask_volume_4", "total_bid_volume_5", "total_ask_volume_5", "total_bid_volume_6", "total_ask_volume_6", "total_bid_volume_7", "total_ask_volume_7", "total_bid_volume_8", "total_ask_volume_8", "total_bid_volume_9", "total_ask_volume_9", "price_impact_buy", "price_impact_sell", "price_impact_1", "price_impact_5", "price_impact_10", "mid_price_return", "l2_volatility_10", "l2_volatility_50", "l2_volatility_200", "ofi_10s", "ofi_normalized_10s", "ofi_weighted_10s", "ofi_30s", "ofi_normalized_30s", "ofi_weighted_30s", "ofi_1m", "ofi_normalized_1m", "ofi_weighted_1m", "ofi_5m", "ofi_normalized_5m", "ofi_weighted_5m", "bid_pressure", "bid_pressure_weighted", "ask_pressure", "ask_pressure_weighted", "pressure_imbalance", "pressure_imbalance_weighted", "book_depth_asymmetry", "bid_quote_lifetime", "ask_quote_lifetime", "quote_lifetime", "book_resilience", "spread_stability_10", "spread_stability_norm_10", "spread_stability_50", "spread_stability_norm_50", "spread_stability_100", "spread_stability_norm_100", "book_shape_1_5", "book_shape_stability", "bid_volume_concentration", "ask_volume_concentration", "volume_concentration"]

# FEATURES.md's group 2 heading says 17 but its table names 15 features (with 17 the groups
# would sum to 120, not 118); the tables are what the catalog follows.
GROUP_SIZES = {"raw_book": 40, "microstructure": 15, "price_impact": 7, "cumulative_depth": 18, "returns_volatility": 4,
               "order_flow_imbalance": 12, "pressure": 7, "stability": 15}


def test_names_and_order_are_the_contract():
    assert len(FEATURES_MD_LIST) == 118
    assert list(catalog.FEATURE_NAMES) == FEATURES_MD_LIST
    f = compute_features(frame([l1(0, 100, 1, 101, 1)]))
    assert f.columns == ["timestamp", "exchange", "symbol", "session_id", *FEATURES_MD_LIST]
    assert dict(f.schema) == features_schema()


def test_groups():
    sizes = {g: sum(s.group == g for s in catalog.CATALOG) for g in catalog.GROUPS}
    for group, n in GROUP_SIZES.items():
        assert sizes[group] == n, group
    assert sum(sizes.values()) == 118


def test_kernel_output_order_comes_from_the_catalog():
    assert kernels.N_DERIVED == 78
    assert kernels.O_MID == 0
    assert catalog.FEATURE_NAMES[catalog.N_RAW + kernels.O_VC] == "volume_concentration"
    assert catalog.FEATURE_NAMES[catalog.N_RAW + kernels.O_OFI10 + 11] == "ofi_weighted_5m"


def test_metadata_rows():
    rows = catalog.metadata_rows()
    assert [r["name"] for r in rows] == FEATURES_MD_LIST
    assert set(rows[0]) == {"name", "group", "description", "calculation_params", "version",
                            "active"}
    by_name = {r["name"]: r for r in rows}
    assert json.loads(by_name["bid_pressure"]["calculation_params"]) == {"delta_bp": 0.1}
    assert json.loads(by_name["ofi_5m"]["calculation_params"]) == {"window_s": 300}
    assert json.loads(by_name["l2_volatility_50"]["calculation_params"]) == {"window_s": 5.0}
    custom = {r["name"]: r for r in catalog.metadata_rows({"delta_bp": 0.2})}
    assert json.loads(custom["bid_pressure"]["calculation_params"]) == {"delta_bp": 0.2}
    assert all(r["active"] and isinstance(r["version"], int) for r in rows)


def test_hash_changes_with_params_and_definitions(monkeypatch):
    base = catalog.catalog_hash()
    assert base == catalog.catalog_hash(dict(catalog.DEFAULT_PARAMS))
    assert catalog.catalog_hash({"lambda_bp": 0.6}) != base
    changed = list(catalog.CATALOG)
    spec = changed[50]
    changed[50] = catalog.FeatureSpec(spec.name, spec.group, spec.definition + " (changed)",
                                      spec.params, spec.version)
    monkeypatch.setattr(catalog, "CATALOG", tuple(changed))
    assert catalog.catalog_hash() != base


def test_lock_file_versions_go_up_when_a_definition_changes():
    """A changed definition or param needs a higher version: update catalog.lock.json then."""
    lock = json.loads(catalog.LOCK_FILE.read_text())
    assert set(lock) == set(catalog.FEATURE_NAMES), "regenerate catalog.lock.json"
    for name, entry in catalog.lock_entries().items():
        locked = lock[name]
        if entry["fingerprint"] != locked["fingerprint"]:
            assert entry["version"] > locked["version"], (
                f"{name}: definition or params changed; bump its version and rewrite the lock")
        else:
            assert entry["version"] == locked["version"], f"{name}: version changed alone"


def test_bad_params():
    with pytest.raises(ValueError):
        catalog.resolve_params({"ofi_levels": 11})
    with pytest.raises(ValueError):
        catalog.resolve_params({"impact_qty": float("nan")})
