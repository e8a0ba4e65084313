"""The low storage layer: Parquet partition layout, the raw capture store, gzip streams.

Imports nothing of the domain (only `settings`), so market, features and lake may all use it.
"""
