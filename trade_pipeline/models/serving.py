"""Serving: a registered model by `NAME@ALIAS`, compiled for microsecond single-row inference.

`load(settings, "btc_l2_5s@champion")` resolves the alias in the registry (never "the newest
file"), checks the model's feature spec against the live feature catalog, and compiles the
booster (`compiled.py`). It REFUSES (raises `ServingError`) a model that uses a feature the
catalog no longer has (or has deactivated), or whose recorded feature version differs from the
catalog's: the features it would be fed would not mean what it was trained on.
"""

from dataclasses import dataclass, field

import numpy as np

from trade_pipeline.models.compiled import CompiledBooster
from trade_pipeline.models.contract import ServingError, check_feature_spec
from trade_pipeline.models.registry import (
    MlflowTarget,
    get_by_alias,
    load_booster,
    version_metadata,
)


def parse_ref(ref: str) -> tuple[str, str | None, str | None]:
    """`NAME@ALIAS` or `NAME/VERSION` -> (name, alias, version)."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        if name and alias:
            return name, alias, None
    elif "/" in ref:
        name, version = ref.split("/", 1)
        if name and version.isdigit():
            return name, None, version
    raise ServingError(f"invalid model reference {ref!r}: expected NAME@ALIAS or NAME/VERSION")


@dataclass
class CompiledModel:
    """A registered model ready for live use: `predict_row(x)` with `x` ordered as
    `feature_names` (float64, NaN for a missing value)."""

    name: str
    version: str
    alias: str | None
    run_id: str
    feature_names: list[str]
    evaluator: CompiledBooster
    metadata: dict = field(default_factory=dict)

    @property
    def horizon(self) -> str:
        return self.metadata.get("horizon", "")

    @property
    def task(self) -> str:
        return self.metadata.get("task", "regression")

    def predict_row(self, x: np.ndarray) -> float:
        """Predicted forward return (regression) or P(up) - P(down) (classification)."""
        return self.evaluator.predict_row(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Many rows at once (same numbers as LightGBM's predict)."""
        return self.evaluator.predict(x)

    def row_from_features(self, features: dict) -> np.ndarray:
        """A row in model order from a name -> value mapping (None -> NaN)."""
        return np.array(
            [np.nan if features[n] is None else features[n] for n in self.feature_names],
            dtype=np.float64,
        )


def compile_booster(booster, name: str = "local", version: str = "0", metadata: dict | None = None,
                    alias: str | None = None, run_id: str = "") -> CompiledModel:
    meta = dict(metadata or {})
    names = list(booster.feature_name())
    if meta.get("features") and list(meta["features"]) != names:
        raise ServingError("the booster's feature names differ from the logged feature list")
    return CompiledModel(name, str(version), alias, run_id, names,
                         CompiledBooster.from_booster(booster), meta)


def load(settings=None, ref: str = "", tracking_uri: str | None = None,
         target: MlflowTarget | None = None) -> CompiledModel:
    """Load `NAME@ALIAS` (or `NAME/VERSION`) from the registry of `settings` (or `target` /
    `tracking_uri`), check it against the catalog, compile it."""
    name, alias, version = parse_ref(ref)
    if target is None:
        if settings is None:
            raise ServingError("load() needs settings or an MlflowTarget")
        target = MlflowTarget.from_settings(settings)
        if tracking_uri:
            target = MlflowTarget(tracking_uri, target.artifact_uri)
    client = target.client()
    if alias is not None:
        mv = get_by_alias(client, name, alias)
        if mv is None:
            raise ServingError(f"no model version {name}@{alias} in {target.tracking_uri}")
    else:
        mv = client.get_model_version(name, version)
    meta = version_metadata(target, name, str(mv.version))
    check_feature_spec(meta)
    booster = load_booster(target, name, str(mv.version))
    return compile_booster(booster, name, str(mv.version), meta, alias, mv.run_id)


def load_model(ref: str, settings=None, **kwargs) -> CompiledModel:
    """`load_model("btc_l2_5s@champion", settings)`: the same as `load`."""
    return load(settings, ref, **kwargs)
