"""The UI as a user sees it: `dagster dev` and `mlflow server` on loopback, the demo
materialized (green: no failed check, no check warning), every definition listed over GraphQL
with the sensors and schedules in their default states, and headless-Chromium screenshots
(after dismissing Dagster's first-visit community dialog) of the asset graph, a
materialization with its plots, the partitions of `l2_features`, its checks tab, the
automation page, and the MLflow registered model with its aliases.

UPDATE_SCREENSHOTS=1 copies the screenshots to docs/screenshots/ (the README shows them).
Without Chromium the test skips, unless REQUIRE_BROWSER=1 (`.ci/run` installs Chromium and
sets it).
"""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from trade_pipeline.settings import Settings
from trade_pipeline_tests.conftest import REPO_ROOT

from .browser import chromium, find_chromium
from .servers import free_port, listening_addresses, server, wait_http

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _require_chromium() -> None:
    if find_chromium() is None:
        reason = "chromium not installed (apt-get install chromium; .ci/run does it)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = json.load(resp)
    assert "errors" not in body, body["errors"]
    return body["data"]


LISTING = """
{
  assetNodes { assetKey { path } isMaterializable
    assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name
    sensors { name sensorState { status } } schedules { name scheduleState { status } } } } }
}
"""
COMMUNITY_DIALOG = "Join the Dagster community"


def _wait_for_location(port: int, timeout: float = 180) -> None:
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name "
             "loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            errors = [e["locationOrLoadError"] for e in entries
                      if e["locationOrLoadError"]["__typename"] == "PythonError"]
            assert not errors, errors
            return
        time.sleep(1)
    raise AssertionError(f"code location not loaded after {timeout}s")


def _expected_definitions() -> dict[str, set]:
    from trade_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    return {
        "assets": {k.to_user_string() for k in graph.get_all_asset_keys()},
        "checks": {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys},
        "sensors": {s.name for s in defs.sensors or []},
        "schedules": {s.name for s in defs.schedules or []},
    }


def _default_states() -> dict[str, str]:
    """Each sensor's and schedule's default status in the definitions (RUNNING / STOPPED)."""
    from trade_pipeline.definitions import defs

    return {d.name: d.default_status.value for d in [*(defs.sensors or []),
                                                      *(defs.schedules or [])]}


def _states(data: dict) -> dict[str, str]:
    out = {}
    for repo in data["repositoriesOrError"]["nodes"]:
        out.update({s["name"]: s["sensorState"]["status"] for s in repo["sensors"]})
        out.update({s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]})
    return out


def _no_dialog(page) -> None:
    """Screenshots show the pages, not Dagster's first-visit community dialog."""
    assert not page.evaluate(f"document.body.innerText.includes({json.dumps(COMMUNITY_DIALOG)})"), \
        "the community dialog is still open"


def _listed(data: dict) -> dict[str, set]:
    assets, checks = set(), set()
    for node in data["assetNodes"]:
        key = "/".join(node["assetKey"]["path"])
        assets.add(key)
        for check in (node.get("assetChecksOrError") or {}).get("checks", []):
            checks.add(f"{key}:{check['name']}")
    repos = data["repositoriesOrError"]["nodes"]
    return {
        "assets": assets,
        "checks": checks,
        "sensors": {s["name"] for r in repos for s in r["sensors"]},
        "schedules": {s["name"] for r in repos for s in r["schedules"]},
    }


def _plot_asset(instance) -> str | None:
    """An asset whose latest materialization carries an image (a plot) in its metadata."""
    import dagster as dg

    for key in instance.get_asset_keys():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key),
                                                  limit=1).records
        if not records:
            continue
        for value in records[0].asset_materialization.metadata.values():
            if "data:image/png" in str(getattr(value, "value", "")):
                return key.to_user_string()
    return None


def _most_downstream(names: list[str]) -> str:
    """The materialized asset with the most upstream assets: its lineage shows the chain."""
    from trade_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()

    def ancestors(key, seen):
        for parent in graph.get(key).parent_keys:
            if parent not in seen:
                seen.add(parent)
                ancestors(parent, seen)
        return seen

    import dagster as dg

    return max(names, key=lambda n: (len(ancestors(dg.AssetKey.from_user_string(n), set())), n))


def _materialized(instance) -> list[str]:
    import dagster as dg

    return sorted(
        k.to_user_string() for k in instance.get_asset_keys()
        if instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=k), limit=1).records
    )


def test_ui_lists_everything_and_screenshots(tmp_path):
    _require_chromium()
    import dagster as dg

    home = tmp_path / "home"
    settings = Settings.load(home=home).ensure_dirs()
    env = {**os.environ, "TRADE_PIPELINE_HOME": str(home),
           "DAGSTER_HOME": str(settings.dagster_home)}
    for name in ("MLFLOW_TRACKING_URI", "TRADE_PIPELINE_MLFLOW_TRACKING_URI", "TRADE_PIPELINE_MLFLOW_ARTIFACTS", "TRADE_PIPELINE_LAKE"):
        env.pop(name, None)

    # 1. Materialize the demo: a newcomer's first run is green where nothing is wrong.
    done = subprocess.run([str(BIN / "trade-pipeline"), "--home", str(home), "demo", "--json"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["failed_checks"] == [] and summary["check_warnings"] == [], summary

    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        materialized = _materialized(instance)
        plot_asset = _plot_asset(instance)
        feature_days = sorted(instance.get_materialized_partitions(dg.AssetKey("l2_features")))
    assert feature_days and summary["partitions_start"] == feature_days[0], \
        (summary["partitions_start"], feature_days)  # partitions start where the data begins
    assert materialized, "nothing was materialized"

    # 2. The servers, on loopback and random free ports.
    ui_port, mlflow_port = free_port(), free_port()
    ui_cmd = [str(BIN / "dagster"), "dev", "-m", "trade_pipeline.definitions",
              "-h", "127.0.0.1", "-p", str(ui_port)]
    mlflow_cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri",
                  settings.mlflow_tracking_uri, "--default-artifact-root",
                  settings.mlflow_artifact_uri, "--host", "127.0.0.1", "--port",
                  str(mlflow_port), "--workers", "1"]
    shots: dict[str, Path] = {}
    with server(ui_cmd, env, tmp_path / "dagster.log", cwd=REPO_ROOT, stop=signal.SIGINT) as ui, \
            server(mlflow_cmd, env, tmp_path / "mlflow.log", cwd=tmp_path) as ml:
        wait_http(f"http://127.0.0.1:{ui_port}/server_info", 180, ui, tmp_path / "dagster.log")
        wait_http(f"http://127.0.0.1:{mlflow_port}/health", 120, ml, tmp_path / "mlflow.log")
        for proc, port in ((ui, ui_port), (ml, mlflow_port)):
            addrs = {a for a in listening_addresses(proc.pid) if a[1] == port}
            assert addrs and {ip for ip, _ in addrs} == {"127.0.0.1"}, addrs
        _wait_for_location(ui_port)

        # 3. Every asset, check, sensor and schedule of the definitions is listed, and the
        # sensors and schedules are in the state their definitions give them.
        data = graphql(ui_port, LISTING)
        listed = _listed(data)
        expected = _expected_definitions()
        for kind in ("assets", "checks", "sensors", "schedules"):
            missing = expected[kind] - listed[kind]
            assert not missing, f"{kind} not listed by the webserver: {sorted(missing)}"
        assert expected["checks"], "no asset checks at all"
        states = _states(data)
        assert {n: states[n] for n in _default_states()} == _default_states()
        assert states["automation_condition_sensor"] == "RUNNING"

        # 4. Screenshots as a user sees the pages.
        base = f"http://127.0.0.1:{ui_port}"
        with chromium(tmp_path / "chromium") as page:
            page.goto(f"{base}/asset-groups")
            page.wait_for_text("Global asset lineage", COMMUNITY_DIALOG)
            time.sleep(1)
            assert page.click_button("Skip"), "no Skip button on the first-visit dialog"
            time.sleep(1)
            _no_dialog(page)
            last = _most_downstream(materialized)
            page.goto(f"{base}/assets/{last}?view=lineage&lineageScope=upstream&lineageDepth=20")
            page.wait_for_text(last, "Graph depth")
            time.sleep(3)
            page.wheel(900, 600, 60, times=1, ctrl=True)  # zoom out to show the chain
            time.sleep(2)
            shots["asset_graph"] = tmp_path / "asset_graph.png"
            _no_dialog(page)
            page.screenshot(shots["asset_graph"])

            shown = plot_asset or ("feature_stats" if "feature_stats" in materialized
                                   else materialized[0])
            page.goto(f"{base}/assets/{shown}?view=events")
            page.wait_for_text(shown, "materialized in run")
            time.sleep(3)
            if plot_asset:  # the plot is a markdown image: open it; it must render
                assert page.click_text("[Show Markdown]"), "no markdown metadata to open"
                time.sleep(3)
                assert page.evaluate(
                    "[...document.images].some(i => i.src.startsWith('data:image/png') "
                    "&& i.naturalWidth > 100)"), "the plot did not render"
            shots["materialization"] = tmp_path / "materialization.png"
            _no_dialog(page)
            page.screenshot(shots["materialization"])

            # The partitions of l2_features: from the home's start (where its data begins)
            # to today, the demo's day materialized.
            today = dt.datetime.now(dt.UTC).date()
            days = (today - dt.date.fromisoformat(summary["partitions_start"])).days + 1
            page.goto(f"{base}/assets/l2_features?view=partitions")
            page.wait_for_text(*feature_days, f"Materialized ({len(feature_days)})",
                               f"{days} Partitions")
            time.sleep(2)
            shots["partitions"] = tmp_path / "partitions.png"
            _no_dialog(page)
            page.screenshot(shots["partitions"])

            # Its checks tab: every check listed, the latest evaluations passed.
            names = sorted(c.split(":")[1] for c in expected["checks"]
                           if c.startswith("l2_features:"))
            page.goto(f"{base}/assets/l2_features?view=checks")
            page.wait_for_text(f"Checks ({len(names)})", *names, "Succeeded")
            time.sleep(2)
            body = page.evaluate("document.body.innerText")
            assert body.count("Succeeded") >= len(names) and "Failed" not in body, body[:2000]
            shots["checks"] = tmp_path / "checks.png"
            _no_dialog(page)
            page.screenshot(shots["checks"])

            # The automation page: every sensor and schedule with its on/off switch.
            page.goto(f"{base}/automation")
            page.wait_for_text(*sorted(_default_states()))
            time.sleep(2)
            shots["automation"] = tmp_path / "automation.png"
            _no_dialog(page)
            page.screenshot(shots["automation"])

            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=f"http://127.0.0.1:{mlflow_port}")
            models = client.search_registered_models()
            if models:
                name = models[0].name
                aliases = sorted(client.get_registered_model(name).aliases)
                # every new version is the challenger; champion only if the gate promoted it
                assert "challenger" in aliases, aliases
                page.goto(f"http://127.0.0.1:{mlflow_port}/#/models/{name}")
                page.wait_for_text(name, "Version", "Aliases", *aliases)
                time.sleep(3)
                page.click_label("Close")  # MLflow 3's assistant side panel, if open
                time.sleep(1)
                shots["mlflow_model"] = tmp_path / "mlflow_model.png"
                page.screenshot(shots["mlflow_model"])

    for name, path in shots.items():
        assert path.stat().st_size > 20_000, f"{name} screenshot looks empty"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name, path in shots.items():
            shutil.copy(path, SCREENSHOTS / f"{name}.png")
    if "mlflow_model" not in shots:
        pytest.fail("the demo registered no MLflow model")
