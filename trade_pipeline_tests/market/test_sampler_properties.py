"""Property tests: random Bybit streams vs a plain-Python reference of DATA.md's rules, plus
invariants of the emitted rows, resume-from-checkpoint and batch == live."""

import gzip
import itertools

import orjson
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trade_pipeline.market.book import BookState
from trade_pipeline.market.live import LiveSampler
from trade_pipeline.market.snapshots import build_snapshots
from trade_pipeline_tests.market.streams import rec

STEP = 100  # ms


def reference(msgs: list[dict], step_ms: int = STEP) -> tuple[list[tuple], dict]:
    """DATA.md's sampling rules for Bybit streams, written the obvious (slow) way."""
    step = step_ms * 1000
    rows: list[tuple] = []
    c = {"gaps": 0, "duplicates": 0, "crossed": 0, "empty": 0, "sessions": 0}
    valid = False
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    last_u = last_t = applied_t = sid = next_g = None
    raw_t = clock_recv = None  # rule 7: raw time and receive time of the clock's reference
    ever = False

    def emit(g):
        if not bids or not asks:
            c["empty"] += 1
            return
        if max(bids) >= min(asks):
            c["crossed"] += 1
            return
        b = sorted(bids.items(), reverse=True)[:10]
        a = sorted(asks.items())[:10]
        rows.append((g, tuple(b), tuple(a), last_u, sid))

    def emit_until(limit, inclusive):
        nonlocal next_g
        while next_g < limit or (inclusive and next_g == limit):
            emit(next_g)
            next_g += step

    def apply(m, side_b, side_a):
        for p, s in m["bids"]:
            side_b.pop(p, None) if s == 0 else side_b.__setitem__(p, s)
        for p, s in m["asks"]:
            side_a.pop(p, None) if s == 0 else side_a.__setitem__(p, s)

    for m in msgs:
        t = t_raw = m["timestamp_ms"] * 1000
        recv = m["received_timestamp_ms"] * 1000
        if last_t is not None:
            # rule 7: behind the previous time, or ahead of the receive clock by > 5 s
            advance = recv - clock_recv
            if t < last_t or t - max(last_t, raw_t) > advance + 5_000_000:
                t = last_t + max(advance, 0)
        u = m["update_id"]
        is_snap = m["type"] == "snapshot" or u == 1
        quiet = False  # skipped without touching the book: the clock does not move
        if is_snap and not (valid and u != 1 and u <= last_u):
            if valid:
                emit_until(applied_t, True)
            bids, asks = {}, {}
            apply(m, bids, asks)
            valid = ever = True
            c["sessions"] += 1
            sid = t if sid is None or t > sid else sid + 1
            g0 = -(-t // step) * step
            next_g = g0 if next_g is None else max(g0, next_g)
            last_u, applied_t = u, t
        elif is_snap or (valid and u <= last_u):
            c["duplicates"] += 1
            quiet = True
        elif not valid:
            quiet = not ever
        elif u == last_u + 1:
            emit_until(t, False)
            apply(m, bids, asks)
            last_u, applied_t = u, t
        else:
            emit_until(applied_t, True)
            valid = False
            c["gaps"] += 1
        if not quiet:
            last_t, raw_t, clock_recv = t, t_raw, recv
    if valid:
        emit_until(applied_t, True)
    return rows, c


def frame_rows(frame: pl.DataFrame) -> list[tuple]:
    out = []
    for r in frame.iter_rows(named=True):
        b = tuple((r[f"bid_price_{k}"], r[f"bid_size_{k}"]) for k in range(1, 11)
                  if r[f"bid_price_{k}"] is not None)
        a = tuple((r[f"ask_price_{k}"], r[f"ask_size_{k}"]) for k in range(1, 11)
                  if r[f"ask_price_{k}"] is not None)
        ts = r["timestamp"]
        us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        out.append((us, b, a, r["update_id"], r["session_id"]))
    return out


price = st.integers(990, 1010).map(lambda k: k / 10)
size = st.sampled_from([0.0, 0.0, 0.001, 0.5, 1.0, 2.5])
level_list = st.lists(st.tuples(price, size), max_size=6)


@st.composite
def streams(draw):
    n = draw(st.integers(1, 60))
    t = draw(st.integers(0, 10_000))
    u = draw(st.integers(2, 1000))
    msgs = []
    for i in range(n):
        kind = draw(st.sampled_from(["delta"] * 8 + ["snapshot", "gap", "dup", "back"]))
        t += draw(st.integers(0, 250))
        t_msg = t - draw(st.integers(1, 300)) if kind == "back" else t
        if kind == "gap":
            u += draw(st.integers(2, 4))
        elif kind != "dup" or i == 0:
            u += 1
        if kind == "snapshot" or i == 0:
            b = [(p, s) for p, s in draw(level_list) if s > 0]
            a = [(p, s) for p, s in draw(level_list) if s > 0]
            msgs.append(rec(t_msg, "snapshot", u, bids=dict(b).items(), asks=dict(a).items()))
        else:
            msgs.append(rec(t_msg, "delta", u, bids=draw(level_list), asks=draw(level_list)))
    return msgs


def write(tmp_path, name, msgs):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(m) + b"\n" for m in msgs)))
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=streams())
def test_random_streams_match_reference_and_invariants(tmp_path, msgs):
    # drop later duplicated price keys within a side, like an exchange would never send
    res = build_snapshots([write(tmp_path, "s.jsonl.gz", msgs)])
    expected, c = reference(msgs)
    got = frame_rows(res.frame)
    assert got == expected
    rep = res.report.to_dict()
    assert rep["gaps"] == c["gaps"] and rep["duplicates"] == c["duplicates"]
    assert rep["crossed_skipped"] == c["crossed"] and rep["empty_side_skipped"] == c["empty"]
    assert rep["sessions"] == c["sessions"]
    # invariants of the output
    ts = [r[0] for r in got]
    assert all(a < b for a, b in itertools.pairwise(ts)), "grid times strictly increasing"
    assert all(t % (STEP * 1000) == 0 for t in ts)
    for _, b, a, _, _ in got:
        assert b and a and b[0][0] < a[0][0], "never crossed, no empty side"
        assert [p for p, _ in b] == sorted((p for p, _ in b), reverse=True)
        assert [p for p, _ in a] == sorted(p for p, _ in a)
    # accounting: every message read is applied or in exactly one skip counter
    assert rep["messages"] == (rep["applied"] + rep["duplicates"] + rep["deltas_before_snapshot"]
                               + rep["skipped_after_gap"])
    # session ids unique per session and increasing
    sids = [r[4] for r in got]
    assert sids == sorted(sids)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=streams(), cut=st.integers(0, 60))
def test_resume_from_checkpoint_equals_one_run(tmp_path, msgs, cut):
    cut = min(cut, len(msgs))
    whole = build_snapshots([write(tmp_path, "all.jsonl.gz", msgs)])
    if cut == 0 or cut == len(msgs):
        return
    first = build_snapshots([write(tmp_path, "a.jsonl.gz", msgs[:cut])])
    state = BookState.from_dict(orjson.loads(orjson.dumps(first.final_state.to_dict())))
    second = build_snapshots([write(tmp_path, "b.jsonl.gz", msgs[cut:])], initial_state=state)
    # the first run closes its session at its last message; the resumed run continues it
    joined = pl.concat([first.frame, second.frame])
    assert frame_rows(joined) == frame_rows(whole.frame)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(msgs=streams(), event=st.booleans())
def test_live_equals_batch_on_random_streams(tmp_path, msgs, event):
    cadence = "event" if event else "100ms"
    batch = build_snapshots([write(tmp_path, "s.jsonl.gz", msgs)], cadence=cadence)
    live = LiveSampler(fmt="bybit", cadence=cadence)
    rows = []
    for m in msgs:
        rows.extend(live.on_message(orjson.dumps(m)))
    rows.extend(live.close())
    assert frame_rows(pl.DataFrame(rows, schema=batch.frame.schema)) == frame_rows(batch.frame)
