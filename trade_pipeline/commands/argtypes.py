"""argparse value types shared by the CLI areas: one validator per kind of value.

Each takes the option's text and returns the parsed value, or raises
`argparse.ArgumentTypeError` (argparse turns it into a usage error naming the option).
"""

import argparse
import math


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _positive(text: str, must: str) -> float:
    value = _number(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be {must}, got {text}")
    return value


def positive_float(text: str) -> float:
    """A number > 0 and finite (durations, intervals, TTLs)."""
    return _positive(text, "a positive finite number")


def positive_seconds(text: str) -> float:
    """Like `positive_float`, with an error that says the value is a number of seconds."""
    return _positive(text, "a positive number of seconds")


def non_negative_float(text: str) -> float:
    """A number >= 0 (inf allowed: e.g. an unbounded speed factor); NaN is rejected."""
    value = _number(text)
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: let the OS pick a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {value}")
    return value
