"""The repository documents itself: nothing sends a user to spec files a clone does not have,
and every relative link in the docs points at a file that exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ["README.md", "docs", "trade_pipeline", "benchmarks", "deploy"]
# Spec files that live outside the repository (or never existed).
OUTSIDE = re.compile(r"(?<![\w/_])(DATA|FEATURES)\.md|RAW_FORMAT|shared/spec")
# Applied migrations are checksummed: editing even a comment would break every warehouse
# that applied them, so their historical comments stay.
FROZEN = {"trade_pipeline/lake/sql/001_add_l2_feature_tables.sql",
          "trade_pipeline/lake/sql/002_add_feature_metadata.sql",
          "trade_pipeline/lake/sql/003_create_optimized_views.sql"}
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _files():
    for name in SCANNED:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        for p in paths:
            if p.is_file() and p.suffix in {".py", ".md", ".sql", ".yaml", ".yml", ".toml", ".sh"} \
                    and "__pycache__" not in p.parts:
                yield p


def test_no_reference_to_spec_files_outside_the_repository() -> None:
    found = []
    for path in _files():
        rel = str(path.relative_to(ROOT))
        if rel in FROZEN:
            continue
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{rel}:{no}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_relative_links_in_the_docs_resolve() -> None:
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "\n".join(broken)


def test_the_pattern_catches_what_it_must() -> None:
    for bad in ("see DATA.md", "(FEATURES.md)", "RAW_FORMAT contract", "../shared/spec/DATA.md"):
        assert OUTSIDE.search(bad), bad
    for good in ("docs/DATA_FORMATS.md", "FEATURES_REFERENCE.md", "docs/ARCHITECTURE.md",
                 "../shared/data"):
        assert not OUTSIDE.search(good), good
