"""The champion gate: whether a newly registered challenger replaces the champion.

It scores challenger and champion on the same rows and moves the registry alias `champion`
only on the rule below; registry I/O goes through `registry`, the serving contract through
`contract`.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from trade_pipeline.models import contract
from trade_pipeline.models.registry import (
    CHAMPION,
    MlflowTarget,
    get_by_alias,
    load_booster,
    version_metadata,
)

DEFAULT_MARGIN = 0.005


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    promoted: bool
    challenger_version: str
    champion_version: str | None
    challenger_score: float | None
    champion_score: float | None
    margin: float
    reason: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def champion_gate(
    target: MlflowTarget, name: str, challenger_version: str, frame: pl.DataFrame,
    margin: float = DEFAULT_MARGIN, fee_bps_per_side: float | None = None,
) -> GateDecision:
    """Score challenger and champion on the challenger's tail rows of `frame`; move
    `champion` when the challenger wins by `margin`. `frame` must hold those rows (and the
    rows after them that their labels need): the training frame, or the same lake range."""
    from trade_pipeline.models.training import Costs, TrainConfig, score_on_tail, tail_score

    client = target.client()
    challenger = client.get_model_version(name, str(challenger_version))
    meta = version_metadata(target, name, challenger.version)
    bounds = (dt.datetime.fromisoformat(meta["tail_start"]),
              dt.datetime.fromisoformat(meta["tail_end"]))
    costs = Costs() if fee_bps_per_side is None else Costs(fee_bps_per_side=fee_bps_per_side)
    config = TrainConfig(horizon=meta["horizon"], task=meta["task"], costs=costs)
    zone = meta.get("dead_zone")

    def score(version: str, features: list[str]) -> float:
        booster = load_booster(target, name, version)
        metrics = score_on_tail(booster.predict, features, frame, bounds, config, zone)
        return tail_score(metrics, config.task)

    champion = get_by_alias(client, name, CHAMPION)
    chal_score = score(challenger.version, meta["features"])

    def decide(passed: bool, champ_v, champ_score, reason: str) -> GateDecision:
        if passed:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        client.set_model_version_tag(name, challenger.version, "gate",
                                     "promoted" if passed else "rejected")
        client.set_model_version_tag(name, challenger.version, "gate_reason", reason[:4000])
        return GateDecision(passed, passed, str(challenger.version), champ_v, chal_score,
                            champ_score, margin, reason)

    if champion is None:
        return decide(True, None, None, "no champion yet")
    if str(champion.version) == str(challenger.version):
        return decide(True, str(champion.version), chal_score, "challenger is the champion")
    champ_meta = version_metadata(target, name, champion.version)
    try:
        contract.check_feature_spec(champ_meta)
    except contract.ServingError as exc:
        return decide(True, str(champion.version), None,
                      f"champion v{champion.version} no longer serves: {exc}")
    champ_score = score(champion.version, champ_meta["features"])
    passed = bool(np.isfinite(chal_score) and chal_score >= champ_score + margin)
    reason = (
        f"challenger v{challenger.version} {chal_score:.6g} vs champion v{champion.version} "
        f"{champ_score:.6g} + margin {margin:g} on the same tail ({bounds[0]} .. {bounds[1]})"
    )
    return decide(passed, str(champion.version), champ_score, reason)
