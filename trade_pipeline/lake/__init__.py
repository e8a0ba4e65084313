"""Parquet lake layout, DuckDB warehouse connection, migration runner, raw capture store."""
