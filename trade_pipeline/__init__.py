"""trade-pipeline: Level-2 order-book data to a BTC trading model, orchestrated by Dagster."""

__version__ = "0.1.0"
