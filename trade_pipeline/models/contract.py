"""The feature contract between a model version and the live feature catalog.

`feature_spec(features, params)` is what a model version records (the feature list, each
feature's catalog version, the catalog hash of its feature parameters);
`check_feature_spec(meta)` is what serving, backtests and checks run before they feed the
model: it raises `ServingError` when a feature is gone, inactive or at another version,
because the values would no longer mean what the model was trained on.
`check_feature_source(meta, stamp)` compares the model's recorded feature parameters and
catalog hash with those of the features about to be fed (a lake partition's stamp, or the
parameters of the online engine), and with today's catalog.
"""

from trade_pipeline.errors import TradePipelineError


class ServingError(TradePipelineError, RuntimeError):
    """The model cannot be served (unknown reference, feature mismatch, ...)."""


def feature_spec(features: list[str], params: dict | None = None) -> dict:
    """What serving checks: the feature list, each feature's catalog version, and the
    catalog hash of the feature parameters the training rows were computed with."""
    from trade_pipeline.features.catalog import SPECS, catalog_hash

    unknown = [f for f in features if f not in SPECS]
    if unknown:
        raise ServingError(f"features not in the catalog: {unknown[:5]}")
    return {
        "features": list(features),
        "feature_versions": {f: SPECS[f].version for f in features},
        "feature_catalog_hash": catalog_hash(params),
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


def model_feature_params(meta: dict) -> dict:
    """The feature parameters the model's training rows were computed with (defaults filled
    in; a model that records none was trained on default-parameter features)."""
    from trade_pipeline.features.catalog import resolve_params

    try:
        return resolve_params(meta.get("feature_params") or {})
    except ValueError as exc:
        raise ServingError(f"the model records invalid feature parameters: {exc}") from None


def check_feature_source(meta: dict, stamp: dict | None = None) -> None:
    """Raise ServingError unless the features about to be fed were computed like the
    model's training rows: same parameters, same catalog hash, and the catalog unchanged
    since training. `stamp`: `features.provenance` stamp of the source (None: the online
    engine run with the model's own parameters, so only the catalog is compared)."""
    from trade_pipeline.features.catalog import catalog_hash

    recorded = meta.get("feature_catalog_hash")
    if not recorded:
        raise ServingError("the model records no feature catalog hash")
    params = model_feature_params(meta)
    now = catalog_hash(params)
    if now != recorded:
        raise ServingError(
            f"the feature catalog changed since the model was trained (hash {recorded[:12]} "
            f"then, {now[:12]} now for its parameters): retrain it")
    if stamp is not None and stamp.get("catalog_hash") != recorded:
        raise ServingError(
            "the features were computed with other parameters or catalog than the model's "
            f"training rows (hash {str(stamp.get('catalog_hash'))[:12]} vs the model's "
            f"{recorded[:12]}; params {_diff(stamp.get('params') or {}, params)})")


def _diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:5]) or "equal"
