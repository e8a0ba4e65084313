"""The model as the trading area sees it: one compiled evaluator for batch and live.

`load_model(settings, "btc_l2_5s@champion")` loads a registered model through
`trade_pipeline.models.serving` (the compiled numba evaluator, refusing a model whose
features, catalog hash, task or priced fee do not match). The backtest's batch predictions
call the same per-row evaluator as paper trading, so both see bit-identical predictions for
identical features. What both trade is the model's expected return (`expected_return_row`:
a classifier's score through the calibration recorded with it).
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
    evaluator: object  # serving.CompiledModel
    info: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    @property
    def metadata(self) -> dict:
        return dict(getattr(self.evaluator, "metadata", {}) or {})

    @property
    def rule(self):
        """The decision rule recorded with the version, or None."""
        return getattr(self.evaluator, "rule", None)

    @property
    def feature_params(self) -> dict:
        return self.evaluator.feature_params

    def oos_guard(self, allow: bool = False):
        """The out-of-sample guard of this model's training range (`models/oos.py`)."""
        from trade_pipeline.models.oos import OutOfSampleGuard

        return OutOfSampleGuard.for_model(self.label, self.metadata, allow)

    def predict_row(self, x: np.ndarray) -> float:
        """The expected return of one row (what the strategy trades)."""
        return self.evaluator.expected_return_row(x)

    def row_function(self):
        """The fastest callable x -> expected return, for the live hot path."""
        return self.evaluator.row_function()

    def matrix(self, features: pl.DataFrame) -> np.ndarray:
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise SettingsError(f"model {self.label} needs features missing from the frame: {missing[:5]}")
        return features.select(self.feature_names).to_numpy().astype(np.float64, copy=False)

    def predict_frame(self, features: pl.DataFrame) -> np.ndarray:
        """One prediction per row, through the same per-row evaluator as live (NaN = null)."""
        x = np.ascontiguousarray(self.matrix(features))
        predict = self.row_function()
        return np.fromiter((predict(x[i]) for i in range(x.shape[0])), dtype=np.float64, count=x.shape[0])


def wrap_booster(booster, name: str, version: int, alias: str | None = None,
                 metadata: dict | None = None) -> LoadedModel:
    """A LightGBM booster compiled with the serving evaluator (tests, tools); `metadata` as a
    registered version records it (training range, decision rule, feature parameters)."""
    from trade_pipeline.models import serving

    served = serving.compile_booster(booster, name, str(version), metadata, alias)
    return LoadedModel(name, version, alias, list(booster.feature_name()), served,
                       info={"horizon": served.horizon, "task": served.task})


def load_model(settings: Settings, ref: str, tracking_uri: str | None = None,
               execution=None) -> LoadedModel:
    """A registered model by `NAME@ALIAS` (or `NAME/VERSION`) via the serving module: the
    registry alias, the contract checks and the compiled evaluator are all serving's
    (`execution`: also refuse a model whose threshold was priced with another fee)."""
    from trade_pipeline.models import serving

    if "@" not in ref and "/" not in ref:
        parse_ref(ref)  # raises the NAME@ALIAS error
    try:
        served = serving.load(settings, ref, tracking_uri=tracking_uri, execution=execution)
    except serving.ServingError as exc:
        raise SettingsError(f"cannot load model {ref}: {exc}") from exc
    return LoadedModel(served.name, int(served.version), served.alias, list(served.feature_names),
                       served, info={"run_id": served.run_id, "horizon": served.horizon,
                                     "task": served.task})
