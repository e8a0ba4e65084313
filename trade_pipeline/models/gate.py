"""The champion gate: whether a newly registered challenger replaces the champion.

It refuses noise. The rows it scores on are the challenger's held-out tail after the
champion's data end plus one horizon: rows that neither model was trained on, nor selected
on. There, with block-bootstrap tests sized for overlapping labels (`significance.py`):

1. the challenger's IC must be significantly above 0 (one-sided p < alpha, default 0.05);
2. with a champion, the paired IC difference challenger - champion on the same rows must be
   significant as well (and at least `margin`, default 0);
3. the cost-aware strategy of the challenger (its own decision rule, costs from
   `ExecutionConfig`) must not lose money on those rows (staying flat is fine).

Each model is scored with its own task, features and decision rule. The sign of
`order_book_imbalance` is reported beside the model, with its interval. Where no row is
clean, nothing is promoted and the reason says why.

"Not promoted" is a normal outcome: the decision carries `passed=True` (the gate ran) and
`promoted=False` with the reason; only an error in the gate itself fails its check.
Registry I/O goes through `registry`, the serving contract through `contract`.
"""

import datetime as dt
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl

from trade_pipeline.market.execution_config import ExecutionConfig
from trade_pipeline.models import contract, significance
from trade_pipeline.models.decision import DecisionRule, horizon_trades, signed_score
from trade_pipeline.models.labels import horizon_rows, parse_horizon
from trade_pipeline.models.registry import (
    CHAMPION,
    MlflowTarget,
    get_by_alias,
    load_booster,
    version_metadata,
)

DEFAULT_ALPHA = significance.DEFAULT_ALPHA
DEFAULT_MARGIN = 0.0  # IC difference required on top of significance
MIN_GATE_ROWS = 100


@dataclass(frozen=True)
class GateDecision:
    passed: bool  # the gate ran and decided (its blocking check); promotion is `promoted`
    promoted: bool
    challenger_version: str
    champion_version: str | None
    challenger_score: float | None  # IC on the gate rows
    champion_score: float | None
    margin: float
    reason: str
    p_value: float = 1.0  # the binding p-value: the largest of the tests a promotion needs
    p_value_ic: float = 1.0  # H0: challenger IC <= 0
    p_value_vs_champion: float | None = None  # H0: IC(challenger) - IC(champion) <= 0
    alpha: float = DEFAULT_ALPHA
    rows: int = 0
    independent_returns: float = 0.0
    block_rows: int = 0
    window: list[str] = field(default_factory=list)
    challenger_ic_ci: list[float | None] = field(default_factory=list)
    champion_ic_ci: list[float | None] = field(default_factory=list)
    ic_difference: float | None = None
    ic_difference_ci: list[float | None] = field(default_factory=list)
    baseline_ic: float | None = None
    baseline_ic_ci: list[float | None] = field(default_factory=list)
    strategy_net_return: float | None = None
    strategy_gross_return: float | None = None
    strategy_trades: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _dt(meta: dict, key: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(meta[key])
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _rule(meta: dict) -> DecisionRule:
    if not meta.get("decision_rule"):
        raise contract.ServingError("the model version records no decision rule")
    return DecisionRule.from_dict(meta["decision_rule"])


def champion_gate(
    target: MlflowTarget, name: str, challenger_version: str, frame: pl.DataFrame, *,
    alpha: float = DEFAULT_ALPHA, margin: float = DEFAULT_MARGIN,
    execution: ExecutionConfig | None = None, reps: int = significance.DEFAULT_REPS,
    seed: int = 0,
) -> GateDecision:
    """Decide on `challenger_version` of `name` with the rows of `frame` (it must hold the
    challenger's tail and the rows after it that the labels need); move `champion` when
    the rules of the module docstring hold. Tags the version with the outcome."""
    from trade_pipeline.models.training import prepare, rows_between

    exe = execution or ExecutionConfig()
    client = target.client()
    challenger = client.get_model_version(name, str(challenger_version))
    meta = version_metadata(target, name, challenger.version)
    horizon, task = meta["horizon"], meta["task"]
    h_rows = horizon_rows(horizon, exe.cadence_ms)
    start, end = _dt(meta, "tail_start"), _dt(meta, "tail_end")

    champion = get_by_alias(client, name, CHAMPION)
    champ_meta, champ_note = None, ""
    if champion is not None and str(champion.version) != str(challenger.version):
        champ_meta = version_metadata(target, name, champion.version)
        try:
            contract.check_feature_spec(champ_meta)
            _rule(champ_meta)
            if "data_end" not in champ_meta:
                raise contract.ServingError("it records no training range")
        except contract.ServingError as exc:
            champ_note = f"champion v{champion.version} no longer serves ({exc}); "
            champ_meta = None
        if champ_meta is not None:
            # Rows the champion's labels (or its selection) saw end one horizon after its
            # data end: score only after that.
            clean_from = _dt(champ_meta, "data_end") + parse_horizon(horizon)
            start = max(start, clean_from + dt.timedelta(microseconds=1))
    champ_v = str(champion.version) if champion is not None else None

    def decide(promoted: bool, reason: str, **figures) -> GateDecision:
        if promoted:
            client.set_registered_model_alias(name, CHAMPION, challenger.version)
        decision = GateDecision(
            passed=True, promoted=promoted, challenger_version=str(challenger.version),
            champion_version=champ_v, margin=margin, alpha=alpha, reason=reason,
            window=[start.isoformat(), end.isoformat()], **figures)
        client.set_model_version_tag(name, challenger.version, "gate",
                                     "promoted" if promoted else "rejected")
        client.set_model_version_tag(name, challenger.version, "gate_reason", reason[:4000])
        client.set_model_version_tag(name, challenger.version, "gate_p_value",
                                     repr(decision.p_value))
        return decision

    if champion is not None and champ_v == str(challenger.version):
        return decide(True, "the challenger already is the champion",
                      challenger_score=None, champion_score=None)

    features = list(meta["features"])
    champ_features = list(champ_meta["features"]) if champ_meta else []
    union = list(dict.fromkeys(features + champ_features))
    prep = prepare(frame, horizon, union)
    rows = rows_between(prep, (start, end)) if start <= end else np.empty(0, np.int64)
    if rows.size < MIN_GATE_ROWS:
        why = (f"only {rows.size} labelled rows of the challenger's tail lie after the "
               f"champion's data end + {horizon}" if champ_meta is not None
               else f"only {rows.size} labelled rows in the challenger's tail")
        return decide(False, f"{champ_note}not promoted: {why} (need >= {MIN_GATE_ROWS} rows "
                      "that neither model was trained on)",
                      challenger_score=None, champion_score=None, rows=int(rows.size))

    realized = prep.returns[rows]

    def outputs(version, feats: list[str]) -> np.ndarray:
        cols = [union.index(f) for f in feats]
        return load_booster(target, name, str(version)).predict(prep.x[np.ix_(rows, cols)],
                                                                num_threads=1)

    raw = outputs(challenger.version, features)
    signals = {"challenger": signed_score(raw, task)}
    if "order_book_imbalance" in prep.frame.columns:
        signals["baseline"] = np.sign(prep.frame[rows].get_column("order_book_imbalance")
                                      .cast(pl.Float64).to_numpy())
    pairs: tuple = ()
    if champ_meta is not None:
        signals["champion"] = signed_score(outputs(champion.version, champ_features),
                                           champ_meta.get("task", "regression"))
        pairs = (("challenger", "champion"),)
    # One bootstrap: every test on the same rows and the same resampled blocks.
    tests, diffs = significance.joint_tests(signals, realized, h_rows, pairs=pairs, reps=reps,
                                            seed=seed)
    test, base = tests["challenger"], tests.get("baseline")
    rule = _rule(meta)
    strat = horizon_trades(prep.ts_us[rows], rule.expected_return(raw), realized,
                           prep.rel_spread[rows], horizon, exe, rule.entry_threshold)
    figures = dict(
        challenger_score=test.ic, rows=test.n, independent_returns=round(test.n_independent, 1),
        block_rows=test.block_rows, challenger_ic_ci=test.ci, p_value_ic=test.p_value,
        p_value=test.p_value, baseline_ic=base.ic if base else None,
        baseline_ic_ci=base.ci if base else [],
        strategy_net_return=strat["strategy_return"],
        strategy_gross_return=strat["strategy_gross_return"],
        strategy_trades=strat["strategy_trades"], champion_score=None,
    )
    window = f"{test.n:,} rows ({test.n_independent:,.0f} independent {horizon} returns)"
    ic_text = (f"IC {_f(test.ic)} [{_f(test.ci_low)}, {_f(test.ci_high)}], "
               f"p={test.p_value:.3g}")

    if champ_meta is not None:
        champ_test, diff = tests["champion"], diffs[("challenger", "champion")]
        figures.update(champion_score=champ_test.ic, champion_ic_ci=champ_test.ci,
                       ic_difference=diff.diff, ic_difference_ci=[diff.ci_low, diff.ci_high],
                       p_value_vs_champion=diff.p_value,
                       p_value=max(test.p_value, diff.p_value))

    if test.p_value >= alpha:
        return decide(False, f"{champ_note}not promoted: the challenger's {ic_text} is not "
                      f"significantly above 0 at alpha {alpha:g} on {window}", **figures)
    if strat["strategy_return"] < 0:
        return decide(False, f"{champ_note}not promoted: its cost-aware strategy loses "
                      f"{strat['strategy_return']:.3g} after costs ({strat['strategy_trades']} "
                      f"trades) on {window}; {ic_text}", **figures)
    if champ_meta is None:
        return decide(True, f"{champ_note}promoted (no serving champion): {ic_text} on "
                      f"{window}; after-cost return {strat['strategy_return']:.3g} with "
                      f"{strat['strategy_trades']} trades", **figures)
    d = figures
    vs = (f"IC difference vs champion v{champ_v} {_f(d['ic_difference'])} "
          f"[{_f(d['ic_difference_ci'][0])}, {_f(d['ic_difference_ci'][1])}], "
          f"p={d['p_value_vs_champion']:.3g}")
    if d["p_value_vs_champion"] >= alpha or (d["ic_difference"] or 0.0) < margin:
        return decide(False, f"not promoted: {vs} is not significant at alpha {alpha:g}"
                      f"{f' with margin {margin:g}' if margin else ''} on {window}; "
                      f"challenger {ic_text}", **figures)
    return decide(True, f"promoted: {vs}; challenger {ic_text} on {window}; after-cost "
                  f"return {strat['strategy_return']:.3g}", **figures)


def _f(value) -> str:
    return "undefined" if value is None else f"{value:.4f}"
