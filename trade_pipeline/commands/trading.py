"""CLI subcommands for the trading area."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands (filled in by the trading work)."""
