"""The read-ahead thread: items in order, errors raised in the consumer, early close stops it."""

import threading
import time

import pytest

from trade_pipeline.storage.read_ahead import ReadAhead


def test_items_in_order_and_producer_cpu_time():
    reader = ReadAhead(lambda: iter(range(10_000)), depth=3)
    assert list(reader) == list(range(10_000))
    assert reader.cpu_s > 0 and reader.wait_s >= 0


def test_producer_error_is_raised_in_the_consumer():
    def items():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in ReadAhead(items):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_producer():
    produced = []

    def items():
        for i in range(1_000_000):
            produced.append(i)
            yield i

    gen = iter(ReadAhead(items, depth=2))
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    gen.close()  # joins the thread
    assert not any(t.name == "read-ahead" for t in threading.enumerate())
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count < 100
