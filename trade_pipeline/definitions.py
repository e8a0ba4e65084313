"""The one place Dagster objects are assembled.

Every asset, check, job, schedule and sensor is defined at module level in a module of the
`trade_pipeline.defs` folder and loaded from there by Dagster's defs-folder loader (no list
to keep in sync: a new module or object is picked up as it is). The monitoring area then adds
the generic checks and freshness policies every asset gets (by its tags), and this module
binds the resources of the home named by $TRADE_PIPELINE_HOME and the executor.

The defs folder is named by `trade_pipeline/dg.toml` (package data, so an installed wheel
loads exactly like the checkout; pyproject.toml's `[tool.dg]` mirrors it for the `dg` CLI).
"""

from pathlib import Path

import dagster as dg

from trade_pipeline.defs.monitoring import with_monitoring
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.settings import EXECUTORS, Settings, SettingsError


def build_executor(name: str, dask_scheduler: str | None = None) -> dg.ExecutorDefinition:
    """The step executor by name: in_process locally, one pod per step on Kubernetes, or the
    steps as tasks of a Dask cluster (docs/DEPLOYMENT.md)."""
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        # Secrets reach step pods by reference only (never values in config).
        return k8s_job_executor.configured(
            {"max_concurrent": 8, "env_secrets": ["trade-pipeline-secrets"]}
        )
    if name == "dask":
        from trade_pipeline.defs.scale import dask_step_executor

        return dask_step_executor(dask_scheduler)
    raise SettingsError(f"invalid executor {name!r}: expected one of {', '.join(EXECUTORS)}")


def build_definitions(
    home: str | dg.EnvVar | None = None, executor: str = "in_process",
    dask_scheduler: str | None = None,
) -> dg.Definitions:
    loaded = with_monitoring(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))
    return dg.Definitions.merge(
        loaded,
        dg.Definitions(resources=build_resources(home),
                       executor=build_executor(executor, dask_scheduler)),
    )


# The code location's executor comes from TRADE_PIPELINE_EXECUTOR (and, for Dask,
# TRADE_PIPELINE_DASK_SCHEDULER) through the one settings reader (Settings.load creates
# nothing); an invalid value fails the load with a clear message.
_settings = Settings.load()
defs = build_definitions(executor=_settings.executor, dask_scheduler=_settings.dask_scheduler)
