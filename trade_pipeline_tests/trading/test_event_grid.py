"""The instrument's tick and lot against the data: a config that is not the instrument's
(Bybit's 0.1 / 0.001 on Binance spot, which trades in 0.01 / 0.00001) is refused with one
line naming the step the data use; the few real off-grid sizes are counted, not refused."""

import json
import re

import pytest

from trade_pipeline.cli import main
from trade_pipeline.market.event_execution_config import EventExecutionConfig
from trade_pipeline.trading.event.engine import EventEngine, EventStreamError

from .event_streams import Stream


@pytest.mark.parametrize("config, refused", [
    ("", "tick_size 0.1 .*multiples of 0.01"),
    ("tick_size = 0.01\n", "lot_size 0.001 .*multiples of 1e-05"),
    ("tick_size = 0.01\nlot_size = 0.00001\n", None),
])
def test_binance_capture_with_the_wrong_tick_or_lot(binance_files, settings, tmp_path, capsys,
                                                   config, refused):
    (tmp_path / "exec.toml").write_text("[event_execution]\n" + config)
    rc = main(["--home", str(settings.home), "backtest", "--events", *map(str, binance_files),
               "--config", str(tmp_path / "exec.toml"), "--json", "--no-store"])
    out, err = capsys.readouterr()
    if refused:
        assert rc == 2 and err.strip().count("\n") == 0, err
        assert re.search(refused, err), err
        return
    assert rc == 0, err
    counts = json.loads(out)["counts"]
    # Binance keeps a few far levels whose sizes predate its lot size (200000.00 x 25.426189)
    assert counts["prices_off_tick"] == 0 and counts["sizes_off_lot"] == 7


def test_live_batches_are_checked_as_they_arrive():
    """Paper trading appends the stream in pieces: the check runs on what has arrived, and
    refuses once the off-grid prices are more than a stray few."""
    cfg = EventExecutionConfig(tick_size=0.5, lot_size=0.001)
    eng = EventEngine(cfg, None, live=True)
    good = Stream().snapshot(0, [(100.0, 1.0), (99.5, 2.0)], [(100.5, 1.0), (101.0, 2.0)]).array()
    eng.append(good)
    eng.append(Stream().bid(100, 99.3, 1.0).array())  # one level off the 0.5 grid: counted
    assert eng.counts()["prices_off_tick"] == 1
    s = Stream()
    for k in range(40):
        s.bid(200 + k, 99.0 - 0.1 * k, 1.0)  # a 0.1 grid: most of these are off 0.5
    with pytest.raises(EventStreamError, match=r"tick_size 0\.5 .*multiples of 0\.1"):
        eng.append(s.array())
