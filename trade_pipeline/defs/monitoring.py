"""Dagster objects for the monitoring area: thin wrappers over trade_pipeline.<domain> code."""

import dagster as dg

defs = dg.Definitions()
