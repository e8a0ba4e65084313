"""`trade-pipeline ...`: the command line. Each area registers its subcommands.

Subcommand modules live in `trade_pipeline.commands` and expose
`register(subparsers) -> None`; their handlers take `(args, settings)` and return an exit
code. Heavy imports stay inside the handlers so `--help` is instant.
"""

import argparse
import importlib
import sys

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.settings import Settings

COMMAND_MODULES = (
    "ingest",
    "features",
    "warehouse",
    "models",
    "trading",
    "monitoring",
    "bench",
    "backfill",
    "demo",
    "scale",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trade-pipeline",
        description="Level-2 order-book data to a BTC trading model.",
    )
    parser.add_argument(
        "--home",
        help="folder holding the lake, the warehouse and the MLflow store "
        "(default: $TRADE_PIPELINE_HOME or ~/.trade-pipeline)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"trade_pipeline.commands.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.load(home=args.home)
        return int(args.func(args, settings) or 0)
    except TradePipelineError as exc:
        # Every deliberate error of every area: one line, exit code 2, no traceback.
        print(f"trade-pipeline: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trade-pipeline: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
