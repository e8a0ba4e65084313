"""Explain a booster: gain importance, mean |SHAP| and single-row inference cost.

- Gain and split counts come from LightGBM's own bookkeeping (`feature_importance`).
- Mean |SHAP| uses LightGBM's TreeSHAP (`predict(..., pred_contrib=True)`) on rows the caller
  chooses (training uses the early-stopping slice of the training window, so neither the
  trees' fit rows nor the held-out tail shape the ranking). For a 3-class model the
  contributions of the three classes are averaged in absolute value.
- `inference_us` times the compiled evaluator (`compiled.py`, what serving runs) one row at a
  time: the cost a feature subset saves in live trading.
"""

import time

import numpy as np

SHAP_ROWS = 1000  # TreeSHAP costs trees x leaves x depth^2 per row: ~1.6 ms here; a ranking needs few


def _sample(x: np.ndarray, limit: int) -> np.ndarray:
    if x.shape[0] <= limit:
        return x
    return x[np.linspace(0, x.shape[0] - 1, limit).round().astype(np.int64)]


def mean_abs_shap(booster, x: np.ndarray, limit: int = SHAP_ROWS) -> np.ndarray:
    """Mean |SHAP value| per feature over (at most `limit` evenly spaced) rows of `x`."""
    n_feat = booster.num_feature()
    if x.shape[0] == 0:
        return np.zeros(n_feat)
    contrib = np.asarray(booster.predict(_sample(x, limit), pred_contrib=True, num_threads=1))
    # [n, (n_feat + 1) * n_class]: per class, the features then the bias column
    n_class = contrib.shape[1] // (n_feat + 1)
    per_class = contrib.reshape(contrib.shape[0], n_class, n_feat + 1)[:, :, :n_feat]
    return np.abs(per_class).mean(axis=(0, 1))


def importance_table(booster, x_shap: np.ndarray, limit: int = SHAP_ROWS) -> list[dict]:
    """[{feature, gain, split, shap}] sorted by gain (then split, then name)."""
    names = booster.feature_name()
    gain = booster.feature_importance("gain")
    split = booster.feature_importance("split")
    shap = mean_abs_shap(booster, x_shap, limit)
    rows = [
        {"feature": n, "gain": float(g), "split": int(s), "shap": float(v)}
        for n, g, s, v in zip(names, gain, split, shap, strict=True)
    ]
    return sorted(rows, key=lambda r: (-r["gain"], -r["split"], r["feature"]))


def by_shap(importance: list[dict]) -> list[str]:
    """Feature names by mean |SHAP|, largest first (ties: by gain)."""
    ranked = sorted(importance, key=lambda r: (-r.get("shap", 0.0), -r["gain"], r["feature"]))
    return [r["feature"] for r in ranked]


def inference_us(booster, x: np.ndarray, calls: int = 2000) -> dict:
    """Single-row latency of the compiled evaluator over successive rows of `x`."""
    from trade_pipeline.models.compiled import CompiledBooster

    compiled = CompiledBooster.from_booster(booster)
    rows = np.ascontiguousarray(_sample(x, calls), dtype=np.float64)
    for r in rows[:100]:
        compiled.predict_row(r)
    ns = np.empty(rows.shape[0])
    clock = time.perf_counter_ns
    for i in range(rows.shape[0]):
        t = clock()
        compiled.predict_row(rows[i])
        ns[i] = clock() - t
    us = ns / 1e3
    return {"p50_us": round(float(np.percentile(us, 50)), 2),
            "p99_us": round(float(np.percentile(us, 99)), 2), "calls": int(rows.shape[0])}


def importance_figure(importance: list[dict], top: int = 20):
    """Gain and mean |SHAP| of the top features (by gain), side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = importance[:top][::-1]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 6), sharey=True)
    names = [r["feature"] for r in rows]
    a1.barh(names, [r["gain"] for r in rows])
    a1.set_title("gain")
    a2.barh(names, [r.get("shap", 0.0) for r in rows], color="tab:orange")
    a2.set_title("mean |SHAP| (early-stopping rows)")
    fig.suptitle("feature importance")
    fig.tight_layout()
    return fig


def top_k_figure(report: list[dict]):
    """Out-of-sample IC and single-row inference time against k (the top-k report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in report]
    fig, a1 = plt.subplots(figsize=(7, 4.5))
    a1.plot(ks, [r["tail_ic"] if r["tail_ic"] is not None else np.nan for r in report],
            marker="o", label="held-out IC")
    a1.set_xlabel("k (features, by mean |SHAP|)")
    a1.set_ylabel("held-out tail IC")
    a2 = a1.twinx()
    a2.plot(ks, [r["inference_p50_us"] for r in report], marker="s", color="tab:red",
            label="inference p50 (us)")
    a2.set_ylabel("single-row inference p50 (us)")
    fig.suptitle("top-k feature subsets")
    fig.tight_layout()
    return fig
