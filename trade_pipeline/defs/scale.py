"""Steps on a Dask cluster: dagster-dask's executor, with run-scoped task keys.

`TRADE_PIPELINE_EXECUTOR=dask` + `TRADE_PIPELINE_DASK_SCHEDULER=tcp://host:8786` make every
step of a run a task on that cluster (`definitions.build_executor`). A worker runs the step
in its own process: it loads `trade_pipeline.definitions` itself, opens the Dagster instance
from the run's instance reference (so the instance must be shared: PostgreSQL,
deploy/dagster.yaml) and reads its own environment for the home, the lake
(`TRADE_PIPELINE_LAKE=s3://...`) and the credentials. Workers therefore get the same
environment as the code location (docs/DEPLOYMENT.md).

Why not `dagster_dask.dask_executor` as it is: it names each task `<job>.<step>`, and Dask
treats equal keys as the same computation, so a second run of the same job submitted while
the first is still running (two partitions of a backfill) is handed the first run's result
and reported successful without having run (dagster-io/dagster#21418, reproduced here with
dagster-dask 0.29.27). This subclass keeps its behaviour and scopes the key to the run.

A worker that dies mid-step: the scheduler gives the task to another worker (Dask retries a
task whose worker died up to `distributed.scheduler.allowed-failures` times, default 3), so
the step runs again from its start; after that the run fails with `KilledWorker` naming the
step. Either way a partition is published only by its atomic final step (storage/lake_fs.py),
so no partial partition ever becomes visible.
"""

import dagster as dg
from dagster_dask.executor import (
    DaskExecutor,
    get_dask_resource_requirements,
    query_on_dask_worker,
)

from trade_pipeline.settings import SettingsError


class RunScopedDaskExecutor(DaskExecutor):
    """dagster-dask's executor on an existing cluster, with task keys `<job>.<run>.<step>`."""

    def __init__(self, address: str):
        super().__init__("existing", {"address": address})
        self.address = address

    def execute(self, plan_context, execution_plan):
        # The body of DaskExecutor.execute for an existing cluster; only the key differs.
        import dask.distributed

        if not plan_context.instance.is_persistent:
            raise SettingsError("the dask executor needs a persistent Dagster instance "
                                "shared with the workers (DAGSTER_HOME, deploy/dagster.yaml)")
        run_id = plan_context.dagster_run.run_id
        job_name = plan_context.job_name
        with dask.distributed.Client(self.address) as client:
            futures, by_step = [], {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    dependencies = [by_step[key] for step_input in step.step_inputs
                                    for key in step_input.dependency_keys]
                    future = client.submit(
                        query_on_dask_worker, dependencies, plan_context.reconstructable_job,
                        plan_context.dagster_run, plan_context.run_config, [step.key],
                        plan_context.instance.get_ref(), execution_plan.known_state,
                        key=f"{job_name}.{run_id}.{step.key}",
                        resources=get_dask_resource_requirements(step.tags),
                    )
                    futures.append(future)
                    by_step[step.key] = future
            for _future, events in dask.distributed.as_completed(futures, with_results=True):
                yield from events


def dask_step_executor(address: str | None) -> dg.ExecutorDefinition:
    if not address:
        raise SettingsError("executor 'dask' needs TRADE_PIPELINE_DASK_SCHEDULER "
                            "(e.g. tcp://dask-scheduler:8786)")

    @dg.executor(name="dask", requirements=dg.multiple_process_executor_requirements())
    def dask_executor(_init_context) -> RunScopedDaskExecutor:
        return RunScopedDaskExecutor(address)

    return dask_executor
