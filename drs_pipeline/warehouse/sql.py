"""Our SQL files: read from the package, split into named statements."""

from __future__ import annotations

import re
from importlib import resources

SQL_PACKAGE = "drs_pipeline.warehouse"


def read_sql(name: str) -> str:
    """A ``.sql`` file of this package, by its path relative to ``warehouse/``."""
    return resources.files(SQL_PACKAGE).joinpath(name).read_text(encoding="utf-8")


def named_statements(sql: str) -> list[tuple[str, str]]:
    """Split a file of ``-- name: x`` blocks into (name, statement) in file order."""
    blocks = re.split(r"^-- name: *(\S+) *$", sql, flags=re.MULTILINE)
    return [(blocks[i], blocks[i + 1].strip()) for i in range(1, len(blocks), 2)]
