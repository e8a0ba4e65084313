"""Feature-quality plot for the feature_stats materialization (matplotlib Agg, PNG bytes)."""

import io

import polars as pl


def null_rate_png(stats: pl.DataFrame, title: str = "") -> bytes:
    """Null rate of each feature (catalog order), with NaN / inf rates stacked on top: one
    look shows warm-up nulls per window length and any feature producing non-finite values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = range(stats.height)
    nulls = stats["null_rate"].fill_null(0.0).to_numpy() * 100  # empty day: no bar, not 0 %
    bad = (stats["nan_rate"].fill_null(0.0) + stats["inf_rate"].fill_null(0.0)).to_numpy() * 100
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.bar(x, nulls, width=0.9, color="tab:blue", label="null")
    ax.bar(x, bad, width=0.9, bottom=nulls, color="tab:red", label="NaN / inf")
    ax.set_xlim(-1, stats.height)
    ax.set_ylabel("% of rows")
    ax.set_xlabel(f"feature (catalog order, {stats.height} features)")
    ax.set_title(title or "feature null / non-finite rates")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
