"""The one place Dagster objects are assembled.

Each area module in `trade_pipeline.defs` exposes `defs: dg.Definitions`; this module merges
them and binds the resources for the home named by $TRADE_PIPELINE_HOME.
"""

import dagster as dg

from trade_pipeline.defs import features, ingest, jobs, models, monitoring, trading, warehouse
from trade_pipeline.defs.resources import build_resources

AREAS = (warehouse, ingest, features, models, trading, monitoring, jobs)


def build_definitions(home: str | dg.EnvVar | None = None) -> dg.Definitions:
    merged = dg.Definitions.merge(*(area.defs for area in AREAS))
    return dg.Definitions.merge(merged, dg.Definitions(resources=build_resources(home)))


defs = build_definitions()
