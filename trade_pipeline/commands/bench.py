"""`trade-pipeline bench NAME [--json]`: runs `benchmarks/bench_NAME.py` and prints its figures.

Each benchmark script exposes `run(settings, argv) -> dict` and can also be run on its own
(`python benchmarks/bench_NAME.py`). They measure; they never assert.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def load(name: str):
    path = BENCH_DIR / f"bench_{name}.py"
    if not path.exists():
        raise SystemExit(
            f"trade-pipeline: error: no benchmark {name!r}; available: {', '.join(available())}"
        )
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure a performance target (ingest, features, storage, inference, live, "
        "walkforward, training, model_quality, ..., all)",
        description="Run a benchmark from benchmarks/ and print its figures.",
    )
    p.add_argument("name", help="benchmark name, or 'all'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace, settings) -> int:
    # REMAINDER swallows flags given after NAME; --json is ours wherever it stands.
    extra = list(args.extra or [])
    if "--json" in extra:
        args.json = True
        extra = [a for a in extra if a != "--json"]
    args.extra = extra
    names = available() if args.name == "all" else [args.name]
    results = {}
    for name in names:
        results[name] = load(name).run(settings, list(args.extra or []))
    out = results if args.name == "all" else results[args.name]
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        for name, figures in results.items():
            print(f"== {name}")
            for key, value in figures.items():
                print(f"  {key:40s} {value}")
    sys.stdout.flush()
    return 0
