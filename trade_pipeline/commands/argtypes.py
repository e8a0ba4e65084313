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


def non_negative_finite_float(text: str) -> float:
    """A finite number >= 0 (a margin: NaN would make every comparison false)."""
    value = _number(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: threads, trials, folds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def json_object(text: str) -> dict:
    """A JSON object (`{...}`): a list, a number or a string is refused."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object like '{{\"impact_qty\": 2.0}}', got {type(value).__name__}")
    return value


def stride_or_auto(text: str) -> int | None:
    """A row stride: an integer >= 1, or 'auto' (None: the training data picks it)."""
    if text == "auto":
        return None
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None
