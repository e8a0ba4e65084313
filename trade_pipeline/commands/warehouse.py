"""CLI subcommands for the warehouse area."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands (filled in by the warehouse work)."""
