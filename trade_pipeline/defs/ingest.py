"""Dagster objects for the ingest area: thin wrappers over trade_pipeline.<domain> code."""

import dagster as dg

defs = dg.Definitions()
