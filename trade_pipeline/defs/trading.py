"""Dagster objects for the trading area: thin wrappers over trade_pipeline.<domain> code."""

import dagster as dg

defs = dg.Definitions()
