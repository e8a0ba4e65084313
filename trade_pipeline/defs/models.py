"""Dagster objects for the models area: thin wrappers over trade_pipeline.<domain> code."""

import dagster as dg

defs = dg.Definitions()
