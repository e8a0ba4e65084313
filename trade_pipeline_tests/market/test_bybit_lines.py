"""The compiled Bybit line parser agrees with the per-line handlers on every line it accepts,
and hands every other line to them (property tests over good, odd and broken lines)."""

import gzip

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trade_pipeline.market import bybit_lines
from trade_pipeline.market.messages import MessageBuffer
from trade_pipeline.market.readers import (
    FileStatus,
    ParseContext,
    _block_generic,
    _TextParser,
    iter_line_blocks,
    iter_text_blocks,
    parse_block,
    read_messages,
)
from trade_pipeline.market.stage_timer import StageTimer
from trade_pipeline_tests.market.streams import read_records, to_wire_line

T0 = 1_751_846_400_000  # 2025-07-07, ms


def _both(fmt: str, lines: list[bytes], symbol: str | None = "BTCUSDT"):
    """(compiled path, handlers only): messages, levels and every counter; plus the number of
    lines the compiled path passed to the handlers."""
    out = []
    for fast in (True, False):
        buf, ctx = MessageBuffer(), ParseContext(symbol=symbol)
        if fast:
            parse_block(fmt, lines, buf, ctx, "f", 0)
        else:
            _block_generic(fmt, lines, buf, ctx, "f", 0)
        msgs, levels = buf.arrays()
        out.append((msgs.tolist(), levels.view(np.int64).tolist(), ctx.bad_lines,
                    ctx.bad_examples, ctx.other_symbol, ctx.control, ctx.symbol))
    ctx = ParseContext(symbol=symbol)
    parser = _TextParser(fmt, ctx, "f", len(lines) + 1, lambda block: None)
    text = b"\n".join(lines)
    parser.feed(text, 0, len(text))
    return out[0], out[1], parser.slow_lines


# ---- line generators ----------------------------------------------------------------------
# About half the lines are ordinary (the compiled path must take them), the others carry one
# or more oddities drawn from the lists below (each must give what the handlers give).

def _pick(draw, odd: bool, normal, *unusual):
    return draw(st.sampled_from([normal, *unusual])) if odd else normal


def _price(draw, quoted: bool, odd: bool) -> str:
    ticks = draw(st.integers(0, 2_000_000))
    form = _pick(draw, odd, "plain", "int", "long", "exp", "neg", "zero")
    if form == "int":
        text = str(ticks)
    elif form == "long":
        text = f"{ticks}.{draw(st.integers(0, 10**12)):012d}"
    elif form == "exp":
        text = f"{ticks}e{draw(st.integers(-30, 30))}"
    elif form == "neg":
        text = f"-{ticks / 10}"
    elif form == "zero":
        text = draw(st.sampled_from(["0", "0.0", "-0", "-0.0", "0.000"]))
    else:
        text = repr(ticks / 10)
    return f'"{text}"' if quoted else text


def _pairs(draw, quoted: bool, odd: bool) -> str:
    n = draw(st.integers(0, 6))
    ws = _pick(draw, odd, "", " ")
    items = [f"[{_price(draw, quoted, odd and draw(st.booleans()))},{ws}"
             f"{_price(draw, quoted, odd and draw(st.booleans()))}]" for _ in range(n)]
    return "[" + f",{ws}".join(items) + "]"


_JUNK = st.sampled_from(['123', '-4.5e3', '"x"', 'true', 'false', 'null', '[]', '{}',
                         '[1,[2,{"k":[3]}]]', '{"a":{"b":null}}', '"caf\\u00e9"', '01', '[1,]',
                         '{"a" 1}', 'tru', '"\xe9"', '1e999', '123456789012345678901234'])


def _odd(draw) -> bool:
    return draw(st.integers(0, 5)) == 0  # each field: usually ordinary even in an odd line


@st.composite
def wire_line(draw) -> bytes:
    odd = draw(st.booleans())
    symbol = _pick(draw, odd and _odd(draw), "BTCUSDT", "ETHUSDT", "", "BTC\\u0055SDT")
    ts = T0 + draw(st.integers(0, 86_400_000))
    ts_text = _pick(draw, odd and _odd(draw), str(ts), f"{ts}.0", "1000", f'"{ts}"', "-1")
    u_text = _pick(draw, odd and _odd(draw), str(draw(st.integers(1, 10**12))), "-3", "1.5",
                   "true")
    topic = _pick(draw, odd and _odd(draw), "orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "x")
    typ = _pick(draw, odd and _odd(draw), draw(st.sampled_from(["delta", "snapshot"])), "trade",
                "Delta")
    # Bybit's own layout (fields in its order, no spaces: the kernel's cheap path) or any
    usual = draw(st.booleans())
    order = (lambda items: items) if usual else (lambda items: draw(st.permutations(items)))
    seq = _pick(draw, odd and _odd(draw), str(draw(st.integers(0, 10**12))), "1.5", "-2", '"x"')
    data = [f'"s":"{symbol}"', f'"b":{_pairs(draw, True, odd and _odd(draw))}',
            f'"a":{_pairs(draw, True, odd and _odd(draw))}', f'"u":{u_text}', f'"seq":{seq}']
    top = [f'"topic":"{topic}"', f'"type":"{typ}"', f'"ts":{ts_text}',
           '"data":{' + ",".join(order(data)) + "}", f'"cts":{ts - 3}']
    if draw(st.booleans()) and not (usual and not odd):
        top.append(f'"extra":{draw(_JUNK) if odd else "[1,{}]"}')
    if odd and _odd(draw):
        top.append(draw(st.sampled_from(top)))  # a duplicate field
    if odd and _odd(draw):
        top.pop(draw(st.integers(0, len(top) - 1)))  # a missing field
    sep = "," if usual else draw(st.sampled_from([",", ", ", " ,\t"]))
    body = "{" + sep.join(order(top)) + "}"
    prefix = _pick(draw, odd and _odd(draw), f"{ts * 1_000_000 + 123_456} ", "", "12 ",
                   "99999999999999999999 ", f"{ts}x ")
    return (prefix + body).encode()


@st.composite
def record_line(draw) -> bytes:
    odd = draw(st.booleans())
    symbol = _pick(draw, odd and _odd(draw), "BTCUSDT", "ETHUSDT", "")
    ts = T0 + draw(st.integers(0, 86_400_000))
    recv = _pick(draw, odd and _odd(draw), str(ts + 7), "null", "5", f"{ts}.5")
    typ = _pick(draw, odd and _odd(draw), draw(st.sampled_from(["delta", "snapshot"])), "trade")
    # the recorder's field order (compact or with Python's ", " / ": " spacing), or any
    usual = draw(st.booleans())
    colon = draw(st.sampled_from([":", ": "]))
    fields = [f'"exchange"{colon}"bybit"', f'"symbol"{colon}"{symbol}"',
              f'"timestamp_ms"{colon}{ts}', f'"received_timestamp_ms"{colon}{recv}',
              f'"type"{colon}"{typ}"', f'"bids"{colon}{_pairs(draw, False, odd and _odd(draw))}',
              f'"asks"{colon}{_pairs(draw, False, odd and _odd(draw))}',
              f'"update_id"{colon}{draw(st.integers(0, 10**12))}', f'"sequence_id"{colon}1']
    if draw(st.booleans()) and not (usual and not odd):
        fields.append(f'"extra":{draw(_JUNK) if odd else "{}"}')
    if odd and _odd(draw):
        fields.pop(draw(st.integers(0, len(fields) - 1)))
    if odd and _odd(draw):
        fields.append(draw(st.sampled_from(fields)))
    sep = draw(st.sampled_from([",", ", "])) if usual else ","
    return ("{" + sep.join(fields if usual else draw(st.permutations(fields))) + "}").encode()


@st.composite
def mutated(draw, line_strategy) -> bytes:
    line = draw(line_strategy)
    action = draw(st.integers(0, 19))
    if action == 0 and line:  # cut short
        line = line[: draw(st.integers(0, len(line) - 1))]
    elif action == 1 and line:  # one byte replaced
        k = draw(st.integers(0, len(line) - 1))
        line = line[:k] + draw(st.sampled_from(list(b'{}[],:" 0.-e\\\t\xc3'))).to_bytes(1, "big") + line[k + 1:]
    elif action == 2:
        line = line + draw(st.sampled_from([b" ", b"\r", b"x", b"}", b" \t"]))
    return line


SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.lists(mutated(wire_line()), min_size=1, max_size=12))
def test_wire_lines_compiled_equals_handlers(lines):
    fast, careful, _ = _both("bybit_raw", lines)
    assert fast == careful


@SETTINGS
@given(st.lists(mutated(record_line()), min_size=1, max_size=12))
def test_record_lines_compiled_equals_handlers(lines):
    fast, careful, _ = _both("bybit", lines)
    assert fast == careful


@SETTINGS
@given(st.lists(mutated(wire_line()), min_size=1, max_size=6))
def test_symbol_is_picked_by_the_handlers(lines):
    fast, careful, _ = _both("bybit_raw", lines, symbol=None)
    assert fast == careful


def test_ordinary_lines_never_take_the_slow_path():
    """The compiled path really parses the normal lines (the comparisons above are not the
    handlers compared with themselves)."""
    wire = [to_wire_line({"symbol": "BTCUSDT", "type": "snapshot" if i == 0 else "delta",
                          "timestamp_ms": T0 + i, "received_timestamp_ms": T0 + i + 5,
                          "bids": [[100.0 - i / 10, 1.5]], "asks": [[100.5, i / 1000]],
                          "update_id": 10 + i, "sequence_id": i}) for i in range(50)]
    fast, careful, slow = _both("bybit_raw", wire)
    assert fast == careful and slow == 0 and len(fast[0]) == 50
    records = [orjson.dumps({"exchange": "bybit", "symbol": "BTCUSDT", "timestamp_ms": T0 + i,
                             "received_timestamp_ms": T0 + i + 3, "type": "delta",
                             "bids": [[100.0, 1e-05], [99.9, 2]], "asks": [], "update_id": i,
                             "sequence_id": 1}) for i in range(50)]
    fast, careful, slow = _both("bybit", records)
    assert fast == careful and slow == 0 and len(fast[0]) == 50
    assert fast[1][0] == np.array([100.0, 1e-05]).view(np.int64).tolist()


def test_asks_before_bids_are_stored_bids_first():
    line = (f'{T0 * 10**6} {{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":{T0},'
            '"data":{"a":[["101.5","2"],["102","3"]],"s":"BTCUSDT","u":7,"b":[["100.5","1"]]}}')
    fast, careful, slow = _both("bybit_raw", [line.encode()])
    assert fast == careful and slow == 0
    msgs = np.array(fast[0])
    assert msgs[0, 7:9].tolist() == [1, 2]  # one bid, two asks
    assert np.array(fast[1]).view(np.float64).tolist() == [[100.5, 1.0], [101.5, 2.0], [102.0, 3.0]]


def test_real_captures_as_wire_and_records(bybit_delta_files):
    """Every line of the real format-2 captures, as recorded and as raw-store wire lines."""
    for path in bybit_delta_files[:4]:
        with gzip.open(path, "rb") as f:
            records = [line.rstrip(b"\n") for line in f]
        fast, careful, slow = _both("bybit", records)
        assert fast == careful and slow <= 1 and fast[2] == 0  # slow: the symbol's first line
        wire = [to_wire_line(m) for m in read_records(path)]
        fast, careful, slow = _both("bybit_raw", wire)
        assert fast == careful and slow <= 1 and len(fast[0]) == len(wire)


@pytest.mark.parametrize("member_lines", [1, 7, 1000])
def test_text_blocks_hold_the_same_lines(tmp_path, member_lines):
    """Blocks cut at any byte, several gzip members, a last line without newline, a
    truncated member: the same lines and status as the per-line reader."""
    lines = [b'{"n":%d,"pad":"%s"}' % (i, b"x" * (i % 97)) for i in range(3000)]
    raw = b"".join(gzip.compress(b"\n".join(lines[i:i + member_lines]) + b"\n")
                   for i in range(0, len(lines), member_lines))
    for name, data in (("ok.gz", raw), ("cut.gz", raw[: len(raw) * 2 // 3]),
                       ("plain.jsonl", b"\n".join(lines))):
        path = tmp_path / name
        path.write_bytes(data)
        s1, s2 = FileStatus(str(path)), FileStatus(str(path))
        expected = [ln for block in iter_line_blocks(path, s1) for ln in block]
        text = b"".join(d[a:b] for d, a, b in iter_text_blocks(path, s2))
        got = text.split(b"\n")
        if got and got[-1] == b"" and text.endswith(b"\n"):
            got.pop()
        assert got == expected and s1 == s2


def test_read_messages_blocks_and_timings(tmp_path):
    lines = [to_wire_line({"symbol": "BTCUSDT", "type": "snapshot" if i == 0 else "delta",
                           "timestamp_ms": T0 + i, "received_timestamp_ms": T0 + i,
                           "bids": [[100.0, 1.0]] * (i % 4), "asks": [[101.0, 2.0]],
                           "update_id": 1 + i, "sequence_id": i}) for i in range(5000)]
    lines.insert(100, b"not json")
    path = tmp_path / "x.raw.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    ctx, timer = ParseContext(), StageTimer()
    blocks = list(read_messages(path, "bybit_raw", ctx, FileStatus(str(path)), chunk_messages=512,
                                timer=timer))
    assert sum(len(b) for b in blocks) == ctx.messages == 5000
    assert max(len(b) for b in blocks) <= 512
    assert ctx.bad_lines == 1 and ctx.bad_examples[0].startswith("x.raw.gz:101:")
    assert set(timer.wall) == set(timer.cpu) == {"read", "parse"}
    assert all(v > 0 for v in timer.wall.values())
    msgs = np.concatenate([b.arrays()[0] for b in blocks])
    assert msgs[:, 5].tolist() == list(range(1, 5001))  # update ids, in order
    assert bybit_lines.DONE == 0
