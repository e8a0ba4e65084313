"""Serving: a registered model by `NAME@ALIAS`, compiled for microsecond single-row inference.

`load(settings, "btc_l2_5s@champion")` resolves the alias in the registry (never "the newest
file"), checks the model's feature spec against the live feature catalog, and compiles the
booster (`compiled.py`). It REFUSES (raises `ServingError`) a model that uses a feature the
catalog no longer has (or has deactivated), or whose recorded feature version differs from the
catalog's: the features it would be fed would not mean what it was trained on. It also
refuses a model whose catalog hash no longer matches today's catalog for its feature
parameters, whose task differs from its registered name's (`registry.task_of_name`), whose
decision rule does not fit its task, or (given an `ExecutionConfig`) whose entry threshold
was priced with another taker fee.

`expected_return_row(x)` is the model's output in the strategy's units (its decision
rule's calibration applied to a classifier's score): what backtest and paper trading trade.
"""

from dataclasses import dataclass, field

import numpy as np

from trade_pipeline.models.compiled import CompiledBooster
from trade_pipeline.models.contract import (
    ServingError,
    check_feature_source,
    check_feature_spec,
    model_feature_params,
)
from trade_pipeline.models.decision import DecisionError, DecisionRule
from trade_pipeline.models.registry import (
    MlflowTarget,
    get_by_alias,
    load_booster,
    task_of_name,
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

    @property
    def rule(self) -> DecisionRule | None:
        """The decision rule recorded with the version (None: the model records none)."""
        if "_rule" not in self.__dict__:
            raw = self.metadata.get("decision_rule")
            try:
                self.__dict__["_rule"] = DecisionRule.from_dict(raw) if raw else None
            except (DecisionError, KeyError, TypeError, ValueError) as exc:
                raise ServingError(f"{self.name}/{self.version}: bad decision rule: {exc}") from None
        return self.__dict__["_rule"]

    @property
    def feature_params(self) -> dict:
        return model_feature_params(self.metadata)

    @property
    def training_range(self) -> tuple[str, str] | None:
        """(data_start, data_end) ISO times of the rows the version was trained and selected
        on; None when it records none."""
        start, end = self.metadata.get("data_start"), self.metadata.get("data_end")
        return (start, end) if start and end else None

    def predict_row(self, x: np.ndarray) -> float:
        """Predicted forward return (regression) or P(up) - P(down) (classification)."""
        return self.evaluator.predict_row(x)

    def expected_return_row(self, x: np.ndarray) -> float:
        """The output in the strategy's units: a classifier's score through its calibration."""
        rule = self.rule
        score = self.evaluator.predict_row(x)
        return score if rule is None or rule.calibration is None else rule.calibration.scalar(score)

    def row_function(self):
        """The fastest callable x -> expected return (the live hot path binds it once)."""
        rule = self.rule
        if rule is None or rule.calibration is None:
            return self.evaluator.predict_row
        raw, cal = self.evaluator.predict_row, rule.calibration.scalar
        return lambda x: cal(raw(x))

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


def check_contract(name: str, meta: dict, execution=None) -> None:
    """Everything serving refuses (see the module docstring); ServingError says what."""
    check_feature_spec(meta)
    check_feature_source(meta)
    task = meta.get("task", "regression")
    if task != task_of_name(name):
        raise ServingError(f"{name} is a {task_of_name(name)} name but the version is a {task} "
                           "model: two tasks never share a registered name")
    raw = meta.get("decision_rule")
    if raw:
        try:
            rule = DecisionRule.from_dict(raw)
            if rule.task != task:
                raise DecisionError(f"the rule is for {rule.task}, the model is {task}")
            if execution is not None:
                rule.check_execution(execution)
        except (DecisionError, KeyError, TypeError, ValueError) as exc:
            raise ServingError(f"{name}: {exc}") from None


def load(settings=None, ref: str = "", tracking_uri: str | None = None,
         target: MlflowTarget | None = None, execution=None) -> CompiledModel:
    """Load `NAME@ALIAS` (or `NAME/VERSION`) from the registry of `settings` (or `target` /
    `tracking_uri`), check its serving contract (with `execution`: its fee too), compile
    it."""
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
    check_contract(name, meta, execution)
    booster = load_booster(target, name, str(mv.version))
    return compile_booster(booster, name, str(mv.version), meta, alias, mv.run_id)


def load_model(ref: str, settings=None, **kwargs) -> CompiledModel:
    """`load_model("btc_l2_5s@champion", settings)`: the same as `load`."""
    return load(settings, ref, **kwargs)
