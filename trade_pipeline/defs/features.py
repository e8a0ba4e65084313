"""Dagster objects for the features area: thin wrappers over trade_pipeline.<domain> code."""

import dagster as dg

defs = dg.Definitions()
