"""Labels, training (Optuna + LightGBM, purged walk-forward CV), MLflow registry, serving."""
