"""The 118 features: catalog (single source), batch engine (polars), online engine."""
