"""Market data: sources, order-book state and the grid sampler. Plain Python, no Dagster."""
