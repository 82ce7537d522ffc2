"""The benchmark's one table: a row per comparison of a scenario with a bound."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

COLUMNS = (
    "scenario",
    "rows",
    "seconds",
    "rows/s",
    "requests",
    "peak RSS MB",
    "bound",
    "bound s",
    "ratio",
    "target",
    "met",
)


@dataclass(frozen=True)
class Target:
    """A figure the row must reach, e.g. ``ratio <= 1.5``."""

    text: str
    met: bool


@dataclass(frozen=True)
class Row:
    scenario: str
    rows: int
    seconds: float
    requests: int | None
    peak_rss_bytes: int | None
    bound: str
    bound_seconds: float
    targets: tuple[Target, ...] = field(default=())

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        """The scenario's time over the bound's: 1.0 means as fast as the bound."""
        return self.seconds / self.bound_seconds if self.bound_seconds > 0 else float("inf")

    @property
    def met(self) -> bool:
        return all(target.met for target in self.targets)

    def cells(self) -> tuple[str, ...]:
        return (
            self.scenario,
            f"{self.rows:,}",
            f"{self.seconds:.3f}",
            f"{self.rows_per_s:,.0f}",
            "-" if self.requests is None else f"{self.requests:,}",
            "-" if self.peak_rss_bytes is None else f"{self.peak_rss_bytes / 2**20:,.0f}",
            self.bound,
            f"{self.bound_seconds:.3f}",
            f"{self.ratio:.2f}",
            "; ".join(target.text for target in self.targets) or "-",
            "-" if not self.targets else ("yes" if self.met else "NO"),
        )


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table, one line per row, columns aligned (numbers to the right)."""
    body = [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    left = {0, 6, 9, 10}  # text columns

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(COLUMNS), rule, *(line(cells) for cells in body)])
