"""Input files named on the command line: one clear line for every way they can be wrong.

- `check_input_file(path, what)`: the path exists, is a regular file (not a directory or a
  device), can be opened for reading, and is not empty (0 bytes);
- `read_parquet_input(path, what, expected, table)`: plus a Parquet file (not a text file, a
  truncated copy or another format), holding the expected columns with compatible types
  (a number where a number is expected, a time where a time is...), readable to the end,
  with at least one row.

Each failure is an `InputFileError` (a `TradePipelineError`: the CLI prints it as one line
and exits 2) that names the option, the path and what is wrong.
"""

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from trade_pipeline.errors import TradePipelineError


class InputFileError(TradePipelineError, ValueError):
    """An input file is missing, unreadable, empty, or not what the command reads."""


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def check_input_file(path: str | os.PathLike, what: str = "input",
                     allow_empty: bool = False) -> Path:
    """The path as a Path if it is a regular file this process can read (and, unless
    `allow_empty`, not empty)."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{what} {path}: not found (no such file; it does not exist)") from None
    except PermissionError:
        raise InputFileError(f"{what} {path}: permission denied") from None
    except OSError as exc:  # e.g. a path through a regular file (ENOTDIR), a symlink loop
        raise InputFileError(f"{what} {path}: {exc.strerror or first_line(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{what} {path}: is a directory, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{what} {path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except PermissionError:
        raise InputFileError(f"{what} {path}: permission denied (not readable)") from None
    except OSError as exc:
        raise InputFileError(f"{what} {path}: cannot read it ({exc.strerror or first_line(exc)})") from None
    if info.st_size == 0 and not allow_empty:
        raise InputFileError(f"{what} {path}: empty file (0 bytes)")
    return path


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_integer():
        return "integer"
    if dtype.is_numeric():
        return "number"
    if isinstance(dtype, pl.Datetime):
        return "time"
    if dtype.is_temporal():
        return "date/duration"
    if dtype in (pl.String, pl.Categorical, pl.Enum) or isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    if dtype == pl.Boolean:
        return "boolean"
    return str(dtype)


def _compatible(actual: pl.DataType, expected: pl.DataType) -> bool:
    got, want = _kind(actual), _kind(expected)
    # An integer column is a valid number (e.g. integral prices); not the other way round.
    return got == want or (want == "number" and got == "integer")


def schema_problems(actual: Mapping[str, pl.DataType], expected: Mapping[str, pl.DataType],
                    one_of: Sequence[Sequence[str]] = ()) -> list[str]:
    """What keeps `actual` from holding the `expected` columns (extra columns are fine)."""
    problems = []
    missing = [c for c in expected if c not in actual]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        problems.append(f"missing columns {missing[:8]}{more}")
    wrong = [f"{c} is {actual[c]}, expected a {_kind(t)}"
             for c, t in expected.items() if c in actual and not _compatible(actual[c], t)]
    if wrong:
        problems.append("wrong types: " + ", ".join(wrong[:5]))
    for group in one_of:
        if not any(c in actual for c in group):
            problems.append(f"needs one of the columns {list(group)}")
    return problems


def read_parquet_input(
    path: str | os.PathLike,
    what: str = "input",
    expected: Mapping[str, pl.DataType] | None = None,
    table: str = "the expected table",
    *,
    one_of: Sequence[Sequence[str]] = (),
    allow_empty: bool = False,
) -> pl.DataFrame:
    """The rows of a Parquet input file, or an `InputFileError` saying in one line why not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_input_file(path, what)
    try:
        arrow_schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{what} {path}: not a Parquet file ({first_line(exc)})") from None
    try:
        actual = pl.from_arrow(arrow_schema.empty_table()).schema
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise InputFileError(f"{what} {path}: unsupported Parquet columns ({first_line(exc)})") from None
    problems = schema_problems(actual, expected or {}, one_of)
    if problems:
        raise InputFileError(f"{what} {path}: not {table}: {'; '.join(problems)}")
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as exc:
        raise InputFileError(f"{what} {path}: damaged Parquet file ({first_line(exc)})") from None
    if frame.height == 0 and not allow_empty:
        raise InputFileError(f"{what} {path}: holds no rows")
    return frame
