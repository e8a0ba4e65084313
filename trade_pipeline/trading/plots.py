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
