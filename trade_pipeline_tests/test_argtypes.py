"""The shared argparse value types of the CLI (`trade_pipeline.commands.argtypes`)."""

import argparse

import pytest

from trade_pipeline.commands import argtypes


@pytest.mark.parametrize(("func", "good", "bad"), [
    (argtypes.positive_float, {"1": 1.0, "0.5": 0.5, "1e3": 1000.0},
     {"0": "must be a positive finite number, got 0", "-1": "positive finite",
      "inf": "positive finite", "nan": "positive finite", "x": "not a number: 'x'"}),
    (argtypes.positive_seconds, {"10": 10.0},
     {"0": "must be a positive number of seconds, got 0", "inf": "seconds", "y": "not a number"}),
    (argtypes.non_negative_float, {"0": 0.0, "2.5": 2.5, "inf": float("inf")},
     {"-0.1": "must be >= 0, got -0.1", "nan": ">= 0", "z": "not a number"}),
    (argtypes.port, {"0": 0, "8080": 8080, "65535": 65535},
     {"65536": "port must be in 0..65535, got 65536", "-1": "0..65535",
      "1.5": "not a port number: '1.5'"}),
    (argtypes.stride_or_auto, {"auto": None, "1": 1, "10": 10},
     {"0": "expected a positive integer or 'auto', got '0'", "-2": "positive integer",
      "2.5": "positive integer", "": "positive integer"}),
])
def test_values_and_messages(func, good, bad) -> None:
    for text, value in good.items():
        assert func(text) == value
    for text, message in bad.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message.replace(".", r"\.")):
            func(text)


def test_cli_reports_the_option_and_the_reason(capsys) -> None:
    parser = argparse.ArgumentParser(prog="t")
    parser.add_argument("--duration", type=argtypes.positive_float)
    with pytest.raises(SystemExit):
        parser.parse_args(["--duration", "-3"])
    assert "argument --duration: must be a positive finite number, got -3" in capsys.readouterr().err
