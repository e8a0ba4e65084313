"""Book sides (sorted arrays, numba) against a dict model; checkpoint round trip."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trade_pipeline.market.book import BookState, grow_book, new_book, set_level
from trade_pipeline.market.sampler import Sampler


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 40), st.sampled_from([0.0, 0.0, 1.0, 2.5, 0.001])),
                    max_size=200))
def test_set_level_matches_a_dict(ops):
    keys = np.zeros(64)
    sizes = np.zeros(64)
    n = 0
    model: dict[float, float] = {}
    for k, size in ops:
        key = k / 10
        n = set_level(keys, sizes, n, key, size)
        if size > 0:
            model[key] = size
        else:
            model.pop(key, None)
        assert n == len(model)
        assert list(keys[:n]) == sorted(model)  # ascending, no duplicates
        assert list(sizes[:n]) == [model[x] for x in sorted(model)]


def test_grow_keeps_content():
    book = new_book(16)
    book[:, :3] = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 1, 1]]
    bigger = grow_book(book, 100)
    assert bigger.shape[1] >= 100 and (bigger[:, :3] == book[:, :3]).all()
    assert grow_book(bigger, 10) is bigger


def test_state_round_trips_through_json():
    state = BookState(exchange="bybit", symbol="BTCUSDT", valid=True, ever_synced=True,
                      last_update_id=7, last_time_us=1_000, last_applied_us=1_000,
                      next_grid_us=100_000, session_id=1_000,
                      bids=[[100.0, 1.0], [99.9, 2.0]], asks=[[100.1, 3.0]])
    sampler = Sampler(initial_state=json.loads(json.dumps(state.to_dict())))
    again = sampler.state()
    assert again == state
    assert again.best_bid() == 100.0 and again.best_ask() == 100.1
