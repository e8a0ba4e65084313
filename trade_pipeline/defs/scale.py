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
dagster-dask 0.29.27). It also passes the run to Dask as plain tuple arguments, which this
distributed release walks and Dagster's partitioned runs refuse (see `StepCall`), and it
rebuilds an asset run's job without its asset selection (see `RunSubset`). This subclass
keeps its behaviour otherwise.

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


class StepCall:
    """The arguments of one step, opaque to Dask: distributed walks tuple arguments to find
    futures in them, and Dagster's records (the run, its partitions definition) refuse to be
    iterated ("Iteration is not allowed on `@record` TimeWindowPartitionsDefinition")."""

    def __init__(self, *args):
        self.args = args


class RunSubset:
    """The run's job as the worker must rebuild it. dagster-dask subsets the job by the run's
    op selection only, which for an asset run is empty: the worker then plans the whole asset
    job, and fails on config for assets the run never selected ("Missing required config
    entry legacy_import"). Dagster's own run path subsets by the asset selection too."""

    def __init__(self, recon_job, dagster_run):
        self.recon_job, self.run = recon_job, dagster_run

    def get_subset(self, *, op_selection=None, **_ignored):
        if op_selection:
            return self.recon_job.get_subset(op_selection=op_selection)
        return self.recon_job.get_subset(
            asset_selection=self.run.asset_selection,
            asset_check_selection=self.run.asset_check_selection,
        )


def run_step(dependencies, call: StepCall):
    """The task a worker runs: dagster-dask's own step function on the run's real subset
    (`dependencies` only orders the tasks)."""
    recon_job, dagster_run, *rest = call.args
    return query_on_dask_worker(dependencies, RunSubset(recon_job, dagster_run), dagster_run,
                                *rest)


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
                    call = StepCall(
                        plan_context.reconstructable_job, plan_context.dagster_run,
                        plan_context.run_config, [step.key], plan_context.instance.get_ref(),
                        execution_plan.known_state,
                    )
                    future = client.submit(
                        run_step, dependencies, call, key=f"{job_name}.{run_id}.{step.key}",
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
