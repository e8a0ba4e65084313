"""Models trained while the registry was down: kept locally, registered later.

`train` checks MLflow before it trains (storage/services.py); if the registry still fails
while the trained model is being logged (it went down during training), the model is not
lost: `save` writes it to `<home>/pending_models/<UTC time>-<name>/` (the pickled training
result, the input example, and how to reload the training frame for the champion gate), and
`trade-pipeline register-pending` registers every kept model once the registry answers
(`register`), exactly as `train` would have: challenger alias, champion gate, warehouse row.
"""

import datetime as dt
import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RESULT_FILE = "result.pkl"
EXAMPLE_FILE = "example.npy"
META_FILE = "meta.json"


def pending_dir(settings) -> Path:
    return Path(settings.home) / "pending_models"


@dataclass(frozen=True)
class Pending:
    path: Path
    meta: dict

    @property
    def name(self) -> str:
        return self.path.name


def save(settings, result, example: np.ndarray, *, exchange: str, symbol: str, margin: float,
         alpha: float, source: dict, error: str) -> Path:
    """Keep a trained model on disk (atomically: a temporary folder renamed into place).
    `source` says how to reload the training frame: {"features": path} or {"start", "end"}."""
    from trade_pipeline.models.registry import model_name

    root = pending_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = root / f"{stamp}-{model_name(symbol, result.horizon, result.config.task)}"
    tmp = root / f".{final.name}.tmp"
    tmp.mkdir()
    with open(tmp / RESULT_FILE, "wb") as out:
        pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    np.save(tmp / EXAMPLE_FILE, np.asarray(example, dtype=np.float64))
    meta = {"exchange": exchange, "symbol": symbol, "margin": margin, "alpha": alpha,
            "source": source,
            "horizon": result.horizon, "trained_at": stamp, "registry_error": error[:500]}
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
    tmp.rename(final)
    return final


def listing(settings) -> list[Pending]:
    """Kept models, oldest first (their folder names start with the UTC time)."""
    root = pending_dir(settings)
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and (path / META_FILE).is_file():
            out.append(Pending(path, json.loads((path / META_FILE).read_text())))
    return out


def register(settings, item: Pending, target, frame) -> object:
    """Register one kept model (see module doc); its folder is removed once registered.
    Returns the `pipeline.Trained`."""
    from trade_pipeline.models.pipeline import register_trained

    # our own file, written by `save` above: not untrusted input
    with open(item.path / RESULT_FILE, "rb") as src:
        result = pickle.load(src)
    example = np.load(item.path / EXAMPLE_FILE)
    meta = item.meta
    trained = register_trained(result, frame, target, meta["exchange"], meta["symbol"],
                               margin=meta["margin"], alpha=meta["alpha"], settings=settings,
                               example=example)
    shutil.rmtree(item.path)
    return trained
