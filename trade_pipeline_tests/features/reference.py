"""A slow, obviously-correct reading of FEATURES.md's stateful features, row by row.

Used to check the engines on random books: every window is found by scanning timestamps
(same session, (t - w, t]), every statistic computed from scratch with numpy."""

import math

import numpy as np
import polars as pl

H5 = sum(1 / m for m in range(1, 6))


def _e(prev, cur, m):
    pb0, qb0, pa0, qa0 = prev[f"bid_price_{m}"], prev[f"bid_size_{m}"], prev[f"ask_price_{m}"], \
        prev[f"ask_size_{m}"]
    pb1, qb1, pa1, qa1 = cur[f"bid_price_{m}"], cur[f"bid_size_{m}"], cur[f"ask_price_{m}"], \
        cur[f"ask_size_{m}"]
    if None in (pb0, pa0, pb1, pa1):
        return 0.0
    return (qb1 * (pb1 >= pb0) - qb0 * (pb1 <= pb0) - qa1 * (pa1 <= pa0) + qa0 * (pa1 >= pa0))


def _std(xs):
    xs = [x for x in xs if x is not None]
    return float(np.std(xs, ddof=1)) if len(xs) >= 2 else None


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _div(a, b):
    return None if a is None or b is None or b == 0 else a / b


def reference(snapshots: pl.DataFrame) -> list[dict]:
    rows = snapshots.with_columns(pl.col("timestamp").dt.epoch("us").alias("t")).to_dicts()
    out = []
    per = []  # per-row series
    for i, r in enumerate(rows):
        prev = rows[i - 1] if i > 0 and rows[i - 1]["session_id"] == r["session_id"] else None
        mid = (r["bid_price_1"] + r["ask_price_1"]) / 2
        spread_bps = (r["ask_price_1"] - r["bid_price_1"]) / mid * 1e4
        bq5, aq5 = r["bid_size_5"], r["ask_size_5"]
        shape = None if bq5 == 0 or aq5 == 0 else (r["bid_size_1"] / bq5 + r["ask_size_1"] / aq5) / 2
        d5 = sum(r[f"bid_size_{k}"] + r[f"ask_size_{k}"] for k in range(1, 6))
        if prev is None:
            ret, e1, ew = None, 0.0, 0.0
        else:
            pmid = (prev["bid_price_1"] + prev["ask_price_1"]) / 2
            ret = mid / pmid - 1
            e1 = _e(prev, r, 1)
            ew = sum(_e(prev, r, m) / m for m in range(1, 6))
        per.append({"t": r["t"], "s": r["session_id"], "ret": ret, "e1": e1, "ew": ew,
                    "dep1": (r["bid_size_1"] + r["ask_size_1"]) / 2, "d5": d5,
                    "spr": spread_bps, "shape": shape, "bp1": r["bid_price_1"],
                    "ap1": r["ask_price_1"]})

        def window(seconds, key, _i=i, _r=r):
            lo = _r["t"] - round(seconds * 1e6)
            return [p[key] for p in per[: _i + 1] if p["s"] == _r["session_id"] and p["t"] > lo]

        def tau(key, _i=i, _r=r):
            same = [j for j in range(_i + 1) if per[j]["s"] == _r["session_id"]]
            last = same[0]
            for j in same[1:]:
                if per[j][key] != per[j - 1][key]:
                    last = j
            return (_r["t"] - per[last]["t"]) / 1e6

        f = {"mid_price_return": ret}
        for n, sec in ((10, 1), (50, 5), (200, 20)):
            f[f"l2_volatility_{n}"] = _std(window(sec, "ret"))
        for label, sec in (("10s", 10), ("30s", 30), ("1m", 60), ("5m", 300)):
            ofi = sum(window(sec, "e1"))
            f[f"ofi_{label}"] = ofi
            f[f"ofi_normalized_{label}"] = _div(ofi, _mean(window(sec, "dep1")))
            f[f"ofi_weighted_{label}"] = sum(window(sec, "ew")) / H5
        f["bid_quote_lifetime"] = tau("bp1")
        f["ask_quote_lifetime"] = tau("ap1")
        f["quote_lifetime"] = (f["bid_quote_lifetime"] + f["ask_quote_lifetime"]) / 2
        f["book_resilience"] = _div(d5, _mean(window(30, "d5")))
        for n, sec in ((10, 1), (50, 5), (100, 10)):
            sd = _std(window(sec, "spr"))
            f[f"spread_stability_{n}"] = sd
            f[f"spread_stability_norm_{n}"] = _div(sd, _mean(window(sec, "spr")))
        f["book_shape_stability"] = _std(window(5, "shape"))
        out.append(f)
    return out


def assert_close(actual, expected, name, row, rel=1e-9, abs_=1e-12):
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        assert actual is None, f"{name} row {row}: expected null, got {actual}"
        return
    assert actual is not None, f"{name} row {row}: expected {expected}, got null"
    assert abs(actual - expected) <= max(abs_, rel * abs(expected)), (
        f"{name} row {row}: {actual} != {expected}")
