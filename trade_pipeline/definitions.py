"""The one place Dagster objects are assembled.

Each area module in `trade_pipeline.defs` exposes `defs: dg.Definitions`; this module merges
them and binds the resources for the home named by $TRADE_PIPELINE_HOME.
"""

import dagster as dg

from trade_pipeline.defs import (
    features,
    ingest,
    jobs,
    models,
    monitoring,
    trades,
    trading,
    warehouse,
)
from trade_pipeline.defs.resources import build_resources
from trade_pipeline.settings import EXECUTORS, Settings, SettingsError

AREAS = (warehouse, ingest, trades, features, models, trading, monitoring, jobs)


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
    merged = monitoring.apply_freshness_policies(
        dg.Definitions.merge(*(area.defs for area in AREAS))
    )
    return dg.Definitions.merge(
        merged,
        dg.Definitions(resources=build_resources(home),
                       executor=build_executor(executor, dask_scheduler)),
    )


# The code location's executor comes from TRADE_PIPELINE_EXECUTOR (and, for Dask,
# TRADE_PIPELINE_DASK_SCHEDULER) through the one settings reader (Settings.load creates
# nothing); an invalid value fails the load with a clear message.
_settings = Settings.load()
defs = build_definitions(executor=_settings.executor, dask_scheduler=_settings.dask_scheduler)
