"""Book checkpoints of daily snapshot builds, kept beside the lake.

`<lake>/_state/<table>/exchange=/symbol=/date=/final_state.json`: the sampler state at the end
of a day (a JSON object), which the next day's build continues so a session that crosses
midnight keeps its id. The lake root may be a folder or an object-store URI (pyarrow's
filesystem layer serves both); a checkpoint is replaced atomically, like a partition: a local
one through `storage.atomic` (single writer), an object-store one through `lake_fs.publish`.
"""

import json

import pyarrow.fs as pafs

from trade_pipeline.storage import lake_fs
from trade_pipeline.storage.atomic import write_text_atomic
from trade_pipeline.storage.layout import PartitionKey

STATE_DIR = "_state"
STATE_FILE = "final_state.json"


def checkpoint_path(lake_dir: str, table: str, key: PartitionKey) -> str:
    return f"{str(lake_dir).rstrip('/')}/{STATE_DIR}/{key.relpath(table)}/{STATE_FILE}"


def load_checkpoint(lake_dir: str, table: str, key: PartitionKey) -> dict | None:
    """The checkpoint stored for one day, or None when there is none."""
    fs, path = lake_fs.resolve(checkpoint_path(lake_dir, table, key))
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as src:
        return json.loads(src.read())


def save_checkpoint(lake_dir: str, table: str, key: PartitionKey, state: dict) -> str:
    """Store one day's checkpoint (replacing any earlier one); returns its path."""
    target = checkpoint_path(lake_dir, table, key)
    if not lake_fs.is_object_store(target):
        write_text_atomic(json.dumps(state), target, what=f"{table} checkpoint")
        return target
    fs, path = lake_fs.resolve(target)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = lake_fs.temp_path(path.rsplit("/", 1)[0], ".json")
    with fs.open_output_stream(tmp) as sink:
        sink.write(json.dumps(state).encode())
    lake_fs.publish(fs, tmp, path)
    return target
