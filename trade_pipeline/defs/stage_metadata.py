"""Metadata both daily lake assets publish: time per stage and bytes per row on disk."""

import dagster as dg
import pyarrow.fs as pafs

from trade_pipeline.market.stage_timer import StageTimer


def stage_metadata(timer: StageTimer, messages: int | None = None) -> dict:
    """`stage_seconds` ({"wall": {stage: s}, "cpu": {stage: s}}), the totals, and the message
    rate when the asset read messages."""
    wall = sum(timer.wall.values())
    meta = {
        "stage_seconds": dg.MetadataValue.json(timer.to_dict()),
        "seconds": round(wall, 3),
        "cpu_seconds": round(sum(timer.cpu.values()), 3),
    }
    if messages is not None and wall > 0:
        meta["msgs_per_s"] = round(messages / wall)
    return meta


def bytes_per_row(path: str, rows: int) -> float:
    """Size of the written partition file per row."""
    if not rows:
        return 0.0
    if "://" in path:
        fs, inner = pafs.FileSystem.from_uri(path)
    else:
        fs, inner = pafs.LocalFileSystem(), path
    return round(fs.get_file_info(inner).size / rows, 1)
