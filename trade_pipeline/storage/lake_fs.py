"""The lake's filesystem: a local folder or an S3-compatible object store, behind one interface.

`resolve(root)` turns a lake root into a pyarrow filesystem and a base path:

- a local folder -> `LocalFileSystem`, absolute path;
- `s3://bucket/prefix` -> pyarrow's `S3FileSystem`. Credentials, region and endpoint come only
  from the environment through the AWS SDK's own chain (`AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` for an S3-compatible
  server such as MinIO or moto, or an IAM role); nothing here names a key.

Publishing a file is the one atomic step of every lake write (`publish`):

- local: `rename(2)` of a temporary file in the same folder (atomic on POSIX);
- S3: the object is uploaded under a temporary key in the same prefix, then `CopyObject`
  (server-side) to the final key and the temporary key is deleted. S3 has no rename, but a
  PUT or COPY makes an object visible whole or not at all, so a reader sees the old object
  or the new one, never part of one.

Temporary names start with `.tmp-`: hidden from `list_partitions` (exact `part-0.parquet`),
from DuckDB's glob (`part-*.parquet`) and from pyarrow datasets (which skip names starting
with `.` or `_`). A writer killed before publishing leaves only such a hidden temporary; the
next write of the same partition removes temporaries older than `STALE_TEMP_S`.

Errors: an unreachable endpoint or a refused request becomes `LakeUnavailableError`, a
one-line message naming the lake URI and the endpoint, instead of an SDK stack trace.
"""

import contextlib
import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator

import pyarrow.fs as pafs

from trade_pipeline.errors import TradePipelineError

TEMP_PREFIX = ".tmp-"
STALE_TEMP_S = 3600.0  # an orphaned temporary older than this is removed on the next write

# Words of the AWS SDK's messages that mean "the store could not be reached or refused us".
_NETWORK_MARKERS = ("NETWORK_CONNECTION", "curlCode", "Could not connect", "Could not resolve",
                    "Connection refused", "timed out", "Timeout")


class LakeUnavailableError(TradePipelineError, OSError):
    """The lake's object store cannot be reached or refused the request; nothing was published."""


def is_object_store(root: str) -> bool:
    return "://" in str(root) and not str(root).startswith("file://")


def resolve(root: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, base path inside it) for a lake root (folder or URI)."""
    root = str(root)
    if "://" in root:
        return pafs.FileSystem.from_uri(root.rstrip("/"))
    return pafs.LocalFileSystem(), os.path.abspath(root)


def endpoint_of(fs: pafs.FileSystem) -> str | None:
    """The S3 endpoint a filesystem talks to (None: AWS itself, or not S3)."""
    if not isinstance(fs, pafs.S3FileSystem):
        return None
    try:  # pyarrow exposes its resolved options only through pickling support
        options = fs.__reduce__()[1][0]
    except (AttributeError, IndexError, TypeError):
        return None
    endpoint = options.get("endpoint_override") if isinstance(options, dict) else None
    if not endpoint:
        return None
    if "://" not in endpoint:
        endpoint = f"{options.get('scheme') or 'https'}://{endpoint}"
    return endpoint


def describe(root: str) -> str:
    """The lake as a user should see it in a message: URI plus endpoint when there is one."""
    if not is_object_store(root):
        return str(root)
    try:
        fs, _ = resolve(root)
    except (OSError, ValueError):
        return str(root)
    endpoint = endpoint_of(fs)
    return f"{root} (endpoint {endpoint})" if endpoint else str(root)


def _is_unavailable(exc: BaseException) -> bool:
    text = str(exc)
    return any(marker in text for marker in _NETWORK_MARKERS) or "AWS Error" in text


@contextlib.contextmanager
def errors(root: str, action: str) -> Iterator[None]:
    """Turn an object-store failure inside the block into one clear `LakeUnavailableError`."""
    try:
        yield
    except TradePipelineError:
        raise
    except OSError as exc:
        if not is_object_store(root) or not _is_unavailable(exc):
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LakeUnavailableError(
            f"lake {describe(root)} unavailable while {action}: {first_line}"
        ) from None


def translating(action: str) -> Callable:
    """Decorator for a lake function with a `root` argument (see `errors`)."""

    def wrap(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            root = signature.bind_partial(*args, **kwargs).arguments.get("root", "")
            with errors(str(root), action):
                return fn(*args, **kwargs)

        return inner

    return wrap


def temp_path(directory: str, suffix: str) -> str:
    import uuid

    return f"{directory}/{TEMP_PREFIX}{uuid.uuid4().hex}{suffix}"


def publish(fs: pafs.FileSystem, tmp: str, final: str) -> None:
    """Make `tmp` visible as `final` in one atomic step (rename locally, copy on S3)."""
    if isinstance(fs, pafs.S3FileSystem):
        # pyarrow's move on S3 is CopyObject + DeleteObject: the final key appears whole.
        fs.copy_file(tmp, final)
        with contextlib.suppress(OSError):  # a leftover temporary is hidden and swept later
            fs.delete_file(tmp)
        return
    fs.move(tmp, final)


def sweep_stale_temps(fs: pafs.FileSystem, directory: str, max_age_s: float = STALE_TEMP_S,
                      now: float | None = None) -> list[str]:
    """Delete temporaries in `directory` older than `max_age_s` (writers killed mid-write).

    Younger ones may belong to a writer still running, so they stay."""
    now = time.time() if now is None else now
    removed = []
    selector = pafs.FileSelector(directory, recursive=False, allow_not_found=True)
    for info in fs.get_file_info(selector):
        name = info.path.rsplit("/", 1)[-1]
        if not name.startswith(TEMP_PREFIX) or info.type != pafs.FileType.File:
            continue
        mtime = info.mtime.timestamp() if info.mtime is not None else None
        if mtime is not None and now - mtime < max_age_s:
            continue
        with contextlib.suppress(OSError):
            fs.delete_file(info.path)
            removed.append(info.path)
    return removed
