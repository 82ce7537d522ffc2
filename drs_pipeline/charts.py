"""Charts of the explore helpers' frames, drawn by the same rules everywhere.

Statuses come in lifecycle order (``ASYNC_JOB_VALIDATING``,
``ASYNC_JOB_VALIDATE_FAILED``, ``AUTO_PARAM_VALIDATE_SUCCESS``, ``COMMIT_SUCCESS``,
then the legacy statuses, then unknown ones by name), each with one colour in every
chart (failures in warning colours); owners read ``tenant / user``; every chart has
a title, axis labels with units, and its legend outside the plotted area; times
are shown in UTC and say so.

The rules (order, colours, labels, units) need nothing beyond the standard library.
The figures need matplotlib, from the ``notebooks`` (or ``dev``) extra: it is
imported when a figure is drawn, so the package imports without it. Each figure is a
``matplotlib.figure.Figure`` of its own (no pyplot state): a notebook shows it with
``display(fig)``, a test inspects it.

    from drs_pipeline import charts, explore
    fig = charts.backlog(explore.backlog(every="5min"))
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drs_pipeline.drs import statuses

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LIFECYCLE",
    "STATUS_COLOURS",
    "backlog",
    "created_per_day",
    "distribution",
    "duration_unit",
    "durations",
    "in_lifecycle_order",
    "nothing_to_draw",
    "owner_label",
    "pass_rate",
    "status_colour",
    "status_counts",
    "timeline",
]

# Every known status in the order a job goes through them; legacy ones last.
LIFECYCLE: tuple[str, ...] = (*statuses.CURRENT, *statuses.LEGACY)

# Okabe-Ito colours (told apart with any colour vision); failures in vermillion and
# orange, the warning colours, which nothing else uses.
STATUS_COLOURS: dict[str, str] = {
    statuses.VALIDATING: "#56B4E9",
    statuses.VALIDATE_FAILED: "#D55E00",
    statuses.VALIDATE_SUCCESS: "#009E73",
    statuses.COMMIT_SUCCESS: "#0072B2",
    statuses.LEGACY_CREATING: "#BBBBBB",
    statuses.LEGACY_CREATE_FAILED: "#E69F00",
    statuses.LEGACY_COMPLETED: "#777777",
}
# Statuses the API may add: a colour picked by name, so always the same one.
UNKNOWN_COLOURS: tuple[str, ...] = ("#8C564B", "#F0E442", "#444444", "#A6761D", "#7F3C8D")
# The marks of the percentiles and of jobs still in progress (not statuses).
P50_COLOUR = "#000000"
P90_COLOUR = "#CC79A7"
IN_PROGRESS_COLOUR = "#777777"
HISTOGRAM_COLOUR = "#BBBBBB"
# ConciseDateFormatter's offsets (the date above the ticks), each naming the zone.
UTC_OFFSET_FORMATS = [
    "UTC",
    "%Y UTC",
    "%Y-%m UTC",
    "%Y-%m-%d UTC",
    "%Y-%m-%d UTC",
    "%Y-%m-%d %H:%M UTC",
]
# What a notebook prints instead of an empty chart (tests look for it).
NOTHING_TO_DRAW = "Nothing to draw"
# A duration is shown in the largest unit it spans at least twice.
UNITS: tuple[tuple[str, float], ...] = (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0))


def status_colour(status: str) -> str:
    """The one colour of ``status`` in every chart."""
    if status in STATUS_COLOURS:
        return STATUS_COLOURS[status]
    return UNKNOWN_COLOURS[zlib.crc32(status.encode("utf-8")) % len(UNKNOWN_COLOURS)]


def in_lifecycle_order(names: Iterable[str]) -> list[str]:
    """``names`` (each once) in lifecycle order, legacy after, unknown ones by name last."""
    unique = set(names)
    known = [status for status in LIFECYCLE if status in unique]
    return known + sorted(unique - set(LIFECYCLE))


def owner_label(domain_name: str, user_name: str | None) -> str:
    """``tenant / user``; a tenant's own row (no user) reads ``tenant (all users)``."""
    if user_name is None or user_name != user_name:  # None, or NaN from a frame
        return f"{domain_name} (all users)"
    return f"{domain_name} / {user_name}"


def duration_unit(seconds: float) -> tuple[str, float]:
    """The unit to show durations up to ``seconds`` in, and its length in seconds."""
    for unit, length in UNITS:
        if seconds >= 2 * length:
            return unit, length
    return "seconds", 1.0


def nothing_to_draw(what: str, why: str) -> str:
    """The line to show instead of a chart of ``what`` that would be empty, saying why."""
    return f"{NOTHING_TO_DRAW}: {what}: {why}."


def _stamp(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    # Constrained layout makes room outside the axes for the legend.
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _legend_outside(fig: Figure, ax: Axes, title: str | None = None) -> None:
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", title=title, fontsize="small")


def _utc_time_axis(ax: Axes, label: str = "time (UTC)") -> None:
    import matplotlib.dates as mdates

    # matplotlib.dates ships without type hints.
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
            locator, tz=UTC, offset_formats=UTC_OFFSET_FORMATS
        )
    )
    ax.set_xlabel(label)


def _times(values: Any) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    """Timestamps as UTC datetime64 (no zone), which matplotlib reads without pandas;
    the axis's formatter shows them in UTC."""
    import pandas as pd

    return pd.DatetimeIndex(values).tz_convert(UTC).tz_localize(None).to_numpy("datetime64[us]")


def status_counts(counts: pd.DataFrame) -> Figure:
    """Jobs present per tenant / user, stacked by status (``explore.status_counts``)."""
    table = counts.pivot_table(
        index=["domain_name", "user_name"],
        columns="status",
        values="jobs",
        aggfunc="sum",
        fill_value=0,
    )
    stale = counts.groupby(["domain_name", "user_name"])["stale"].any()
    labels = [
        owner_label(domain, user) + (" (stale)" if stale[(domain, user)] else "")
        for domain, user in table.index
    ]
    fig, ax = _figure(11, 0.4 * len(table) + 2)
    left = [0.0] * len(table)
    for status in in_lifecycle_order(table.columns):
        values = [float(v) for v in table[status]]
        ax.barh(labels, values, left=left, color=status_colour(status), label=status)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("jobs present")
    ax.set_ylabel("tenant / user")
    as_of = counts["as_of"].dropna()
    when = f" as of {_stamp(as_of.min())}" if not as_of.empty else ""
    ax.set_title(f"Jobs present by status, per tenant / user{when}")
    _legend_outside(fig, ax, "status")
    return fig


def backlog(frame: pd.DataFrame) -> Figure:
    """Jobs in each status over time, stacked in lifecycle order (``explore.backlog``)."""
    table = frame.pivot_table(
        index="instant", columns="status", values="jobs", aggfunc="sum", fill_value=0
    )
    order = in_lifecycle_order(table.columns)
    fig, ax = _figure(11, 4.5)
    # Steps, not slopes: each instant's counts drawn back to the instant before, so a
    # change shows no later than the observation that saw it, and the last instant
    # (the latest state) shows.
    ax.stackplot(
        _times(table.index),
        [[float(v) for v in table[status]] for status in order],
        labels=order,
        colors=[status_colour(status) for status in order],
        step="pre",
    )
    _utc_time_axis(ax)
    ax.set_ylabel("jobs")
    ax.set_title(
        f"Backlog: jobs in each status, {_stamp(table.index.min())} to {_stamp(table.index.max())}"
    )
    _legend_outside(fig, ax, "status")
    return fig


def durations(bounds: pd.DataFrame, metric: str) -> Figure:
    """p50 and p90 of ``metric`` per tenant / user with the bounds of each, and the
    longest time so far of jobs still in progress (``explore.duration_bounds``)."""
    rows = bounds[bounds["metric"] == metric].reset_index(drop=True)
    measured = rows[rows["jobs"] > 0]
    waiting = rows[rows["in_progress"] > 0]
    highest = [float(measured["p90_high_s"].max())] if not measured.empty else []
    so_far = [float(waiting["longest_in_progress_s"].max())] if not waiting.empty else []
    unit, length = duration_unit(max([*highest, *so_far, 0.0]))
    labels = [
        f"{owner_label(domain, user)}\n{jobs} measured, {in_progress} in progress"
        for domain, user, jobs, in_progress in zip(
            rows["domain_name"].tolist(),
            rows["user_name"].tolist(),
            rows["jobs"].tolist(),
            rows["in_progress"].tolist(),
            strict=True,
        )
    ]
    fig, ax = _figure(11, 0.6 * len(rows) + 2)
    for name, marker, colour, offset in [
        ("p50", "o", P50_COLOUR, -0.12),
        ("p90", "D", P90_COLOUR, 0.12),
    ]:
        if measured.empty:
            break
        value = measured[f"{name}_s"] / length
        below = (measured[f"{name}_s"] - measured[f"{name}_low_s"]).clip(lower=0) / length
        above = (measured[f"{name}_high_s"] - measured[f"{name}_s"]).clip(lower=0) / length
        ax.errorbar(
            list(value),
            [i + offset for i in measured.index],
            xerr=[list(below), list(above)],
            fmt=marker,
            color=colour,
            capsize=3,
            label=f"{name} (bar: the true {name} lies within)",
        )
    if not waiting.empty:
        ax.scatter(
            list(waiting["longest_in_progress_s"] / length),
            list(waiting.index),
            marker=">",
            facecolors="none",
            edgecolors=IN_PROGRESS_COLOUR,
            label="longest in progress so far\n(a lower bound: not measured yet)",
        )
    ax.set_yticks(range(len(rows)), labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"{metric} ({unit})")
    ax.set_ylabel("tenant / user")
    ax.set_title(f"{metric}: p50 and p90 per tenant / user")
    handles, names = ax.get_legend_handles_labels()
    # p50 and p90 first, then the jobs still in progress, whatever order they were drawn in.
    ranked = sorted(zip(names, handles, strict=True), key=lambda pair: not pair[0].startswith("p"))
    fig.legend(
        [h for _, h in ranked], [n for n, _ in ranked], loc="outside right upper", fontsize="small"
    )
    return fig


def distribution(samples: pd.DataFrame, metric: str) -> Figure:
    """A histogram of the samples of ``metric`` (their midpoints), p50 and p90 marked
    (``explore.duration_samples``)."""
    from matplotlib.ticker import MaxNLocator

    rows = samples[samples["metric"] == metric]
    seconds = rows["seconds"]
    unit, length = duration_unit(float(seconds.max()))
    fig, ax = _figure(11, 4)
    ax.hist(list(seconds / length), bins=min(30, max(5, len(rows) // 3)), color=HISTOGRAM_COLOUR)
    for name, q, style, colour in [("p50", 0.5, "--", P50_COLOUR), ("p90", 0.9, ":", P90_COLOUR)]:
        # Linear interpolation, as DuckDB's quantile_cont in the marts.
        value = float(seconds.quantile(q)) / length
        ax.axvline(value, linestyle=style, color=colour, label=f"{name} = {value:.3g} {unit}")
    resolution = float((rows["high_s"] - rows["low_s"]).median()) / length
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"{metric} ({unit})")
    ax.set_ylabel("samples")
    ax.set_title(
        f"{metric}: {len(rows)} sample{'s' if len(rows) != 1 else ''} (midpoints; "
        f"median width of their bounds {resolution:.3g} {unit})"
    )
    _legend_outside(fig, ax)
    return fig


def pass_rate(rates: pd.DataFrame) -> Figure:
    """First-time validation verdicts per tenant / user, as shares of those with one:
    passed in the success colour, failed in the failure colour
    (``explore.validation_pass_rate``)."""
    rows = rates.reset_index(drop=True)
    decided = (rows["passed"] + rows["failed"]).astype(float)
    passed = [100.0 * p / d if d else 0.0 for p, d in zip(rows["passed"], decided, strict=True)]
    failed = [100.0 * f / d if d else 0.0 for f, d in zip(rows["failed"], decided, strict=True)]
    labels = [
        f"{owner_label(domain, user)}\n{p} of {p + f} passed, {still} validating"
        for domain, user, p, f, still in zip(
            rows["domain_name"].tolist(),
            rows["user_name"].tolist(),
            rows["passed"].tolist(),
            rows["failed"].tolist(),
            rows["still_validating"].tolist(),
            strict=True,
        )
    ]
    fig, ax = _figure(11, 0.6 * len(rows) + 2)
    ax.barh(
        labels, passed, color=status_colour(statuses.VALIDATE_SUCCESS), label="passed first time"
    )
    ax.barh(
        labels,
        failed,
        left=passed,
        color=status_colour(statuses.VALIDATE_FAILED),
        label="failed first time",
    )
    for i, (share, d) in enumerate(zip(passed, decided, strict=True)):
        ax.text(1, i, f"{share:.0f} %" if d else "no verdict yet", va="center", fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of first validations with a verdict (%)")
    ax.set_ylabel("tenant / user")
    ax.set_title("First-time validation pass rate per tenant / user")
    _legend_outside(fig, ax)
    return fig


def created_per_day(per_day: pd.DataFrame) -> Figure:
    """Jobs created per UTC day, stacked by final status (``explore.jobs_created_per_day``)."""
    table = per_day.pivot_table(
        index="day", columns="final_status", values="jobs", aggfunc="sum", fill_value=0
    )
    days = [f"{day:%Y-%m-%d}" for day in table.index]
    fig, ax = _figure(11, 4)
    bottom = [0.0] * len(table)
    for status in in_lifecycle_order(table.columns):
        values = [float(v) for v in table[status]]
        ax.bar(days, values, bottom=bottom, color=status_colour(status), label=status)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_xlabel("day created (UTC)")
    ax.set_ylabel("jobs created")
    ax.set_title("Jobs created per day, by final (latest known) status")
    _legend_outside(fig, ax, "final status")
    return fig


def timeline(intervals: pd.DataFrame) -> Figure:
    """One job's intervals over time, a row per status (``explore.job_timeline``); an
    open interval is drawn up to the job's last observation, all that is known of it."""
    import numpy as np

    order = in_lifecycle_order(intervals["status"])
    job = intervals["async_job_id"].iloc[0]
    fig, ax = _figure(11, 0.5 * len(order) + 2)
    starts = _times(intervals["valid_from"])
    stops = _times(intervals["valid_to"].fillna(intervals["last_seen_at"]))
    for row, status in enumerate(order):
        mine = (intervals["status"] == status).to_numpy()
        ax.barh(
            [row] * int(mine.sum()),
            stops[mine] - starts[mine],
            left=starts[mine],
            height=0.5,
            color=status_colour(status),
            label=status,
        )
        # A tick at each start, so an interval seen only once still shows.
        ax.scatter(
            starts[mine], [row] * int(mine.sum()), marker="|", s=300, color=status_colour(status)
        )
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    _utc_time_axis(ax)
    ax.set_ylabel("status")
    # A margin on both sides, so that an interval seen once, at either end, shows.
    first, last = starts.min(), stops.max()
    margin = max((last - first) * 0.03, np.timedelta64(1, "s"))
    ax.set_xlim(first - margin, last + margin)
    ax.set_title(f"Statuses of job {job}")
    _legend_outside(fig, ax, "status")
    return fig
