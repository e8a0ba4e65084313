"""Property: extend_decimal_pairs either declines (nothing appended) or gives float()'s doubles."""
import math
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.market.messages import extend_decimal_pairs

decimal = st.from_regex(r"-?[0-9]{1,17}(\.[0-9]{0,17})?", fullmatch=True)
token = st.one_of(decimal, st.text(max_size=6), st.floats(), st.integers(), st.none())
pair = st.one_of(st.lists(token, min_size=2, max_size=2), st.lists(token, max_size=3))


def _same(a, b):
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (a != a and b != b)


@settings(max_examples=400, deadline=None)
@given(st.lists(pair, max_size=12))
def test_matches_float_or_declines(pairs):
    lv = array("d", [7.0])
    ok = extend_decimal_pairs(lv, pairs)
    if not ok:
        assert list(lv) == [7.0]
        return
    ref = [float(x) for p in pairs for x in p]
    assert all(isinstance(x, str) for p in pairs for x in p) and all(len(p) == 2 for p in pairs)
    assert len(lv) == 1 + len(ref) and all(_same(a, b) for a, b in zip(lv[1:], ref, strict=True))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(decimal, min_size=2, max_size=2), min_size=1, max_size=8))
def test_plain_decimals_accepted_when_short(pairs):
    lv = array("d")
    ok = extend_decimal_pairs(lv, pairs)
    short = all(sum(c.isdigit() for c in x) <= 15 for p in pairs for x in p)
    assert ok == short
    if ok:
        assert all(_same(a, float(b)) for a, b in zip(lv, [x for p in pairs for x in p], strict=True))
