"""trade-pipeline: Level-2 order-book data to a BTC trading model, orchestrated by Dagster."""

from pathlib import Path as _Path

from trade_pipeline.storage.numba_cache import clear_if_stale as _clear_if_stale

__version__ = "0.1.0"

# Before any kernel is compiled or loaded: numba's cache does not notice a change in a
# callee defined in another file (see storage/numba_cache.py).
_clear_if_stale(_Path(__file__).parent)
