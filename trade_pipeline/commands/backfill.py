"""`trade-pipeline backfill`: launch an asset backfill on a running Dagster webserver, follow it,
and report how parallel it ran.

The same request the UI sends (GraphQL `launchPartitionBackfill`): the instance's backfill
daemon then submits the runs, its run queue launches them (limits: `concurrency.runs` in
dagster.yaml, `max_concurrent_runs` and the `dagster/backfill` tag limit) and the
`duckdb_writer` pool serializes only the steps that write the warehouse. Progress and the
figures come from the same GraphQL API (run and step start/end times).
"""

import argparse
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request

from trade_pipeline.errors import TradePipelineError
from trade_pipeline.storage import tables

DEFAULT_ASSETS = (tables.SNAPSHOTS, tables.FEATURES, tables.FEATURE_STATS)
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

_LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""

_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status }
    ... on Error { message }
  }
}"""

_RUNS = """
query Runs($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename
    ... on Runs {
      results {
        runId status startTime endTime
        tags { key value }
        stepStats { stepKey status startTime endTime }
      }
    }
    ... on Error { message }
  }
}"""


class BackfillError(TradePipelineError):
    """The webserver refused or failed a backfill request."""


def graphql(url: str, query: str, variables: dict, timeout_s: float = 60.0) -> dict:
    """POST one GraphQL request to `<url>/graphql`; its `data` (errors raise BackfillError)."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    request = urllib.request.Request(f"{url.rstrip('/')}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            answer = json.loads(resp.read())
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise BackfillError(f"Dagster webserver at {url} unreachable: {exc}") from None
    if answer.get("errors"):
        raise BackfillError(f"GraphQL error from {url}: {answer['errors'][0].get('message')}")
    return answer["data"]


def launch_backfill(url: str, partitions: list[str], assets=DEFAULT_ASSETS,
                    tags: dict | None = None, title: str | None = None,
                    run_config: dict | None = None) -> str:
    """Launch an asset backfill of `assets` over `partitions`; returns its id. `run_config`
    goes to every run, so every run must have each op it names (select accordingly)."""
    params = {
        "partitionNames": list(partitions),
        "assetSelection": [{"path": [name]} for name in assets],
        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        "title": title or f"{partitions[0]}..{partitions[-1]}",
    }
    if run_config is not None:
        params["runConfigData"] = run_config
    out = graphql(url, _LAUNCH, {"params": params})["launchPartitionBackfill"]
    if out["__typename"] != "LaunchBackfillSuccess":
        raise BackfillError(f"backfill refused ({out['__typename']}): {out.get('message')}")
    return out["backfillId"]


def backfill_status(url: str, backfill_id: str) -> str:
    out = graphql(url, _STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if out["__typename"] != "PartitionBackfill":
        raise BackfillError(f"backfill {backfill_id}: {out.get('message')}")
    return out["status"]


def wait_backfill(url: str, backfill_id: str, timeout_s: float, poll_s: float = 2.0,
                  on_poll=None) -> str:
    """Poll until the backfill is done; its final status (BackfillError on timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = backfill_status(url, backfill_id)
        if on_poll is not None:
            on_poll(status)
        if status in DONE:
            return status
        if time.monotonic() > deadline:
            raise BackfillError(f"backfill {backfill_id} still {status} after {timeout_s:.0f}s")
        time.sleep(poll_s)


def backfill_runs(url: str, backfill_id: str) -> list[dict]:
    """The backfill's runs with their step timings (epoch seconds)."""
    tags = [{"key": "dagster/backfill", "value": backfill_id}]
    out = graphql(url, _RUNS, {"tags": tags})["runsOrError"]
    if out["__typename"] != "Runs":
        raise BackfillError(f"runs of backfill {backfill_id}: {out.get('message')}")
    return out["results"]


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def parallelism(runs: list[dict]) -> dict:
    """Wall time, most runs and steps at once, and CPU-free figures of how busy it was.

    `overlap_<step>`: most steps of that name running at once (e.g. several days' lake writes
    at the same time); `busy_ratio`: the sum of step durations over the wall time (2.0 = two
    steps at work on average)."""
    spans = [(r["startTime"], r["endTime"]) for r in runs if r["startTime"] and r["endTime"]]
    steps = [s for r in runs for s in r["stepStats"] if s["startTime"] and s["endTime"]]
    if not spans:
        return {"runs": len(runs)}
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    by_name: dict[str, list[tuple[float, float]]] = {}
    for s in steps:
        by_name.setdefault(s["stepKey"], []).append((s["startTime"], s["endTime"]))
    return {
        "runs": len(runs),
        "runs_succeeded": sum(r["status"] == "SUCCESS" for r in runs),
        "wall_s": round(wall, 1),
        "max_concurrent_runs": _max_overlap(spans),
        "max_concurrent_steps": _max_overlap([(s["startTime"], s["endTime"]) for s in steps]),
        "busy_ratio": round(sum(e - s for s, e in
                                ((x["startTime"], x["endTime"]) for x in steps)) / wall, 2)
        if wall > 0 else None,
        "steps": {name: {"count": len(v), "overlap": _max_overlap(v),
                         "seconds": round(sum(e - s for s, e in v), 1)}
                  for name, v in sorted(by_name.items())},
    }


def day_range(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise BackfillError(f"--to {end} is before --from {start}")
    return [(first + dt.timedelta(days=k)).isoformat() for k in range((last - first).days + 1)]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backfill",
        help="launch a backfill of daily partitions on a running Dagster webserver",
        description="Launch an asset backfill (what the UI's Materialize -> partition range does) "
        "through the webserver's GraphQL API; with --wait, follow it and print wall time and "
        "parallelism (runs and steps at once) as JSON. The instance's daemon must be running "
        "(`dagster dev`, or dagster-daemon beside the webserver).",
    )
    p.add_argument("--url", default="http://127.0.0.1:3000", help="webserver URL")
    p.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    p.add_argument("--assets", default=",".join(DEFAULT_ASSETS),
                   help=f"comma-separated asset names (default {','.join(DEFAULT_ASSETS)})")
    p.add_argument("--wait", action="store_true", help="follow the backfill until it is done")
    p.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds to wait at most")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace, settings) -> int:
    from trade_pipeline.settings import check_date

    days = day_range(check_date(args.start), check_date(args.end))
    assets = [a.strip() for a in args.assets.split(",") if a.strip()]
    backfill_id = launch_backfill(args.url, days, assets)
    out: dict = {"backfill_id": backfill_id, "partitions": len(days), "assets": assets}
    if args.wait:
        started = time.monotonic()
        out["status"] = wait_backfill(args.url, backfill_id, args.timeout)
        out["wall_s"] = round(time.monotonic() - started, 1)
        out["parallelism"] = parallelism(backfill_runs(args.url, backfill_id))
    print(json.dumps(out), flush=True)
    sys.stdout.flush()
    return 0 if out.get("status") in (None, "COMPLETED", "COMPLETED_SUCCESS") else 1
