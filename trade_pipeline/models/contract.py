"""The feature contract between a model version and the live feature catalog.

`feature_spec(features)` is what a model version records (the feature list, each feature's
catalog version, the catalog hash); `check_feature_spec(meta)` is what serving, backtests
and checks run before they feed the model: it raises `ServingError` when a feature is gone,
inactive or at another version, because the values would no longer mean what the model
was trained on.
"""

from trade_pipeline.errors import TradePipelineError


class ServingError(TradePipelineError, RuntimeError):
    """The model cannot be served (unknown reference, feature mismatch, ...)."""


def feature_spec(features: list[str]) -> dict:
    """What serving checks: the feature list, each feature's catalog version, the hash."""
    from trade_pipeline.features.catalog import SPECS, catalog_hash

    unknown = [f for f in features if f not in SPECS]
    if unknown:
        raise ServingError(f"features not in the catalog: {unknown[:5]}")
    return {
        "features": list(features),
        "feature_versions": {f: SPECS[f].version for f in features},
        "feature_catalog_hash": catalog_hash(),
    }


def check_feature_spec(meta: dict) -> None:
    """Raise ServingError unless every model feature exists, is active and has the catalog's
    version."""
    from trade_pipeline.features.catalog import SPECS

    features = meta.get("features")
    versions = meta.get("feature_versions")
    if not features or not isinstance(versions, dict):
        raise ServingError("the model records no feature list / feature versions")
    problems = []
    for name in features:
        spec = SPECS.get(name)
        if spec is None:
            problems.append(f"{name}: not in the catalog")
        elif not spec.active:
            problems.append(f"{name}: inactive in the catalog")
        elif int(versions.get(name, -1)) != spec.version:
            problems.append(f"{name}: model v{versions.get(name)} != catalog v{spec.version}")
    if set(versions) != set(features):
        problems.append("feature_versions does not cover exactly the feature list")
    if problems:
        raise ServingError(
            f"model features differ from the catalog ({len(problems)}): " + "; ".join(problems[:5])
        )
