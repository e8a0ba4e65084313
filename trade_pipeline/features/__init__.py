"""The 118 features: catalog (single source), batch engine (polars), online engine.

- `catalog`: FEATURE_NAMES, CATALOG (FeatureSpec), DEFAULT_PARAMS, catalog_hash(),
  metadata_rows() (the warehouse's feature_metadata rows).
- `batch.compute_features(snapshots, params=None)`: l2_snapshots rows -> l2_features rows.
- `online.OnlineFeatures`: one row at a time, same kernel, same values.
- `kernels`: the one numba implementation both engines run.
- `warmup`: exact warm-up of a partition from the partitions before it.
- `quality`: the asset checks' logic; `reference`: docs/FEATURES_REFERENCE.md.

Submodules are imported explicitly (numba loads only where features are computed).
"""
