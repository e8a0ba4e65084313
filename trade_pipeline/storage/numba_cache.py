"""Keep numba's on-disk cache (`cache=True`) in step with the package's source.

Numba invalidates a cached function only when the file that defines it changes; a change in
another file whose functions it calls goes unnoticed (a limitation numba documents), and the
stale machine code keeps running. The compiled kernels here call across modules (the event
engine's loop calls the exchange, depth and queue modules; the book and feature kernels are
split the same way), so an edit, a `git pull` or an upgrade that touches a callee but not its
caller would run old code.

`clear_if_stale(package_dir)` fingerprints the content of every module of the package that
mentions numba (so an edit elsewhere costs no recompilation) and, when the fingerprint
differs from the one recorded beside the cache, removes every cached index and object (`*.nbi`, `*.nbc`)
under the package's `__pycache__` folders before anything is compiled, then records the new
fingerprint. Numba recompiles on first use and tolerates files removed under it, so
concurrent processes (pytest workers, Dagster step processes) are safe. A read-only install
(numba then caches elsewhere or not at all) is left alone.
"""

import hashlib
import os
from pathlib import Path

STAMP_NAME = "numba-sources.stamp"


def source_fingerprint(package_dir: Path) -> str:
    """A hash of the path and content of every module that mentions numba."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        data = path.read_bytes()
        if b"numba" in data:
            digest.update(str(path.relative_to(package_dir)).encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def clear_if_stale(package_dir: str | os.PathLike) -> int:
    """Remove numba's cached code under `package_dir` if any source file changed since it
    was recorded; returns how many cache files were removed (0 when up to date)."""
    package_dir = Path(package_dir)
    cache_dir = package_dir / "__pycache__"
    stamp = cache_dir / STAMP_NAME
    fingerprint = source_fingerprint(package_dir)
    try:
        if stamp.read_text() == fingerprint:
            return 0
    except OSError:
        pass  # no stamp yet: treat whatever is cached as stale
    if not os.access(package_dir, os.W_OK):
        return 0
    removed = 0
    for pattern in ("*.nbi", "*.nbc"):
        for path in package_dir.rglob(f"__pycache__/{pattern}"):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass  # another process removed it first
    try:
        cache_dir.mkdir(exist_ok=True)
        tmp = cache_dir / f".{STAMP_NAME}.{os.getpid()}"
        tmp.write_text(fingerprint)
        tmp.replace(stamp)  # atomic: a reader sees the old or the new fingerprint
    except OSError:
        pass  # cannot record it: the next process checks again, nothing worse
    return removed
