"""Equity curve and drawdown plots (matplotlib, Agg backend), as PNG bytes."""

import io

import numpy as np


def equity_drawdown_png(ts_us: np.ndarray, equity: np.ndarray, title: str = "") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = np.asarray(ts_us, dtype="datetime64[us]")
    peak = np.maximum.accumulate(equity)
    dd = equity / peak - 1.0
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                   gridspec_kw={"height_ratios": [2, 1]})
    ax1.plot(times, equity, lw=0.8, color="tab:blue")
    ax1.set_ylabel("equity (USDT)")
    ax1.set_title(title or "equity curve")
    ax1.grid(alpha=0.3)
    ax2.fill_between(times, dd * 100, 0, color="tab:red", alpha=0.4, lw=0)
    ax2.set_ylabel("drawdown (%)")
    ax2.grid(alpha=0.3)
    ax2.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def event_run_png(ts_ns: np.ndarray, equity: np.ndarray, position: np.ndarray,
                  markout_means: dict[str, dict[int, float | None]], title: str = "") -> bytes:
    """Equity curve, inventory, and the markout curve (mean markout in bp against seconds
    after the fill, one line per liquidity kind) of an event backtest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = np.asarray(np.asarray(ts_ns) // 1000, dtype="datetime64[us]")
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8),
                                        gridspec_kw={"height_ratios": [2, 1, 1.4]})
    ax1.plot(times, equity, lw=0.8, color="tab:blue")
    ax1.set_ylabel("equity (USDT)")
    ax1.set_title(title or "event backtest")
    ax1.grid(alpha=0.3)
    ax2.step(times, position, where="post", lw=0.8, color="tab:purple")
    ax2.set_ylabel("inventory")
    ax2.grid(alpha=0.3)
    for ax in (ax1, ax2):
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    for label, curve in markout_means.items():
        hs = [h for h, v in curve.items() if v is not None]
        ax3.plot(hs, [curve[h] for h in hs], marker="o", label=label)
    ax3.axhline(0.0, color="grey", lw=0.6)
    ax3.set_xlabel("seconds after the fill")
    ax3.set_ylabel("mean markout (bp)")
    ax3.grid(alpha=0.3)
    if markout_means:
        ax3.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
