"""The model as the trading area sees it: one compiled evaluator for batch and live.

`load_model(settings, "btc_l2_5s@champion")` loads a registered model through
`trade_pipeline.models.serving` (the compiled numba evaluator, refusing a model whose
features differ from the catalog). The backtest's batch predictions call the same per-row
evaluator as paper trading, so both see bit-identical predictions for identical features.
"""

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from trade_pipeline.settings import Settings, SettingsError


def parse_ref(ref: str) -> tuple[str, str]:
    name, sep, alias = ref.partition("@")
    if not sep or not name or not alias:
        raise SettingsError(f"invalid model reference {ref!r}: expected NAME@ALIAS, e.g. btc_l2_5s@champion")
    return name, alias


@dataclass
class LoadedModel:
    name: str
    version: int
    alias: str | None
    feature_names: list[str]
    evaluator: object  # has predict_row(np.ndarray) -> float
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    def predict_row(self, x: np.ndarray) -> float:
        return self.evaluator.predict_row(x)

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise SettingsError(f"model {self.label} needs features missing from the frame: {missing[:5]}")
        return features.select(self.feature_names).to_numpy().astype(np.float64, copy=False)

    def predict_frame(self, features: pl.DataFrame) -> np.ndarray:
        """One prediction per row, through the same per-row evaluator as live (NaN = null)."""
        x = np.ascontiguousarray(self.matrix(features))
        predict = self.evaluator.predict_row
        return np.fromiter((predict(x[i]) for i in range(x.shape[0])), dtype=np.float64, count=x.shape[0])


def wrap_booster(booster, name: str, version: int, alias: str | None = None) -> LoadedModel:
    """A LightGBM booster compiled with the serving evaluator (tests, tools)."""
    from trade_pipeline.models.compiled import CompiledBooster

    return LoadedModel(name, version, alias, list(booster.feature_name()),
                       CompiledBooster.from_booster(booster))


def load_model(settings: Settings, ref: str, tracking_uri: str | None = None) -> LoadedModel:
    """A registered model by `NAME@ALIAS` (or `NAME/VERSION`) via the serving module: the
    registry alias, the catalog check and the compiled evaluator are all serving's."""
    from trade_pipeline.models import serving

    if "@" not in ref and "/" not in ref:
        parse_ref(ref)  # raises the NAME@ALIAS error
    try:
        served = serving.load(settings, ref, tracking_uri=tracking_uri)
    except serving.ServingError as exc:
        raise SettingsError(f"cannot load model {ref}: {exc}") from exc
    return LoadedModel(served.name, int(served.version), served.alias, list(served.feature_names),
                       served, info={"run_id": served.run_id, "horizon": served.horizon,
                                     "task": served.task})
