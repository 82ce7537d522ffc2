"""The chart rules, checked on the Figure objects the helpers return (not on images):
one colour per status in every chart, lifecycle order, titles and labelled axes,
legends outside the plotted area, UTC times, p50 and p90 marked."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import matplotlib
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from drs_pipeline import charts
from drs_pipeline.drs.statuses import (
    COMMIT_SUCCESS,
    LEGACY_COMPLETED,
    LEGACY_CREATE_FAILED,
    LEGACY_CREATING,
    VALIDATE_FAILED,
    VALIDATE_SUCCESS,
    VALIDATING,
)

UNKNOWN = "ASYNC_JOB_SOMETHING_NEW"
EVERY_STATUS = [
    UNKNOWN,
    COMMIT_SUCCESS,
    LEGACY_COMPLETED,
    VALIDATE_SUCCESS,
    LEGACY_CREATING,
    VALIDATE_FAILED,
    LEGACY_CREATE_FAILED,
    VALIDATING,
]
LIFECYCLE_ORDER = [
    VALIDATING,
    VALIDATE_FAILED,
    VALIDATE_SUCCESS,
    COMMIT_SUCCESS,
    LEGACY_CREATING,
    LEGACY_CREATE_FAILED,
    LEGACY_COMPLETED,
    UNKNOWN,
]
T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + timedelta(seconds=seconds))


# Frames shaped as the explore helpers return them.
COUNTS = pd.DataFrame(
    {
        "domain_name": ["acme"] * len(EVERY_STATUS) + ["zhou"],
        "user_name": ["etl"] * len(EVERY_STATUS) + ["ops"],
        "status": [*EVERY_STATUS, VALIDATING],
        "jobs": [*range(1, len(EVERY_STATUS) + 1), 4],
        "as_of": [at(60)] * len(EVERY_STATUS) + [at(30)],
        "stale": [False] * len(EVERY_STATUS) + [True],
    }
)
BACKLOG = pd.DataFrame(
    {
        "instant": [at(s) for s in (0, 60, 120) for _ in EVERY_STATUS],
        "status": EVERY_STATUS * 3,
        "jobs": list(range(3 * len(EVERY_STATUS))),
    }
)
PER_DAY = pd.DataFrame(
    {
        "day": [T0.date()] * len(EVERY_STATUS),
        "final_status": EVERY_STATUS,
        "jobs": [2] * len(EVERY_STATUS),
    }
)
TIMELINE = pd.DataFrame(
    {
        "project_id": "p" * 32,
        "async_job_id": "job-1",
        "status": [VALIDATING, VALIDATE_FAILED, VALIDATING, UNKNOWN],
        "domain_name": "acme",
        "user_name": "etl",
        "valid_from": [at(0), at(60), at(120), at(180)],
        "valid_to": [at(60), at(120), at(180), pd.NaT],
        "seconds": [60.0, 60.0, 60.0, None],
        "last_seen_at": [at(30), at(90), at(150), at(180)],
    }
)
BOUNDS = pd.DataFrame(
    {
        "domain_name": ["acme", "acme", "zhou"],
        "user_name": ["etl", "ops", "ops"],
        "metric": "validation",
        "jobs": [3, 0, 1],
        "mean_s": [110.0, None, 95.0],
        "p50_s": [120.0, None, 95.0],
        "p90_s": [128.0, None, 95.0],
        "max_s": [130.0, None, 95.0],
        "in_progress": [1, 2, 0],
        "resolution_s": [60.0, None, 60.0],
        "p50_low_s": [90.0, None, 65.0],
        "p50_high_s": [150.0, None, 125.0],
        "p90_low_s": [98.0, None, 65.0],
        "p90_high_s": [158.0, None, 125.0],
        "longest_in_progress_s": [200.0, 400.0, None],
    }
)
SAMPLES = pd.DataFrame(
    {
        "metric": ["validation"] * 5 + ["time_to_commit"],
        "seconds": [60.0, 120.0, 180.0, 240.0, 600.0, 900.0],
        "low_s": [30.0, 90.0, 150.0, 210.0, 570.0, 870.0],
        "high_s": [90.0, 150.0, 210.0, 270.0, 630.0, 930.0],
    }
)
RATES = pd.DataFrame(
    {
        "domain_name": ["acme", "acme", "zhou"],
        "user_name": ["etl", "ops", None],
        "left_validating": [3, 0, 4],
        "passed": [2, 0, 1],
        "failed": [1, 0, 3],
        "other": [0, 0, 0],
        "pass_rate": [2 / 3, None, 0.25],
        "still_validating": [1, 2, 0],
    }
)


def every_figure() -> dict[str, Figure]:
    return {
        "status_counts": charts.status_counts(COUNTS),
        "backlog": charts.backlog(BACKLOG),
        "durations": charts.durations(BOUNDS, "validation"),
        "distribution": charts.distribution(SAMPLES, "validation"),
        "pass_rate": charts.pass_rate(RATES),
        "created_per_day": charts.created_per_day(PER_DAY),
        "timeline": charts.timeline(TIMELINE),
    }


def drawn(fig: Figure) -> Figure:
    FigureCanvasAgg(fig).draw()
    return fig


def status_colours(fig: Figure) -> dict[str, set[str]]:
    """Every colour each status is drawn in: bars, stacked areas, legend entries."""
    found: dict[str, set[str]] = defaultdict(set)
    for ax in fig.axes:
        for container in ax.containers:
            if isinstance(container, BarContainer) and container.get_label() in EVERY_STATUS:
                for patch in container.patches:
                    found[container.get_label()].add(to_hex(patch.get_facecolor()))
        for collection in ax.collections:
            if collection.get_label() in EVERY_STATUS:
                for colour in collection.get_facecolor():
                    found[collection.get_label()].add(to_hex(colour))
    for legend in fig.legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            if text.get_text() in EVERY_STATUS:
                assert isinstance(handle, Patch)
                found[text.get_text()].add(to_hex(handle.get_facecolor()))
    return found


def test_statuses_come_in_lifecycle_order_legacy_then_unknown() -> None:
    assert charts.in_lifecycle_order(EVERY_STATUS) == LIFECYCLE_ORDER
    assert charts.in_lifecycle_order(["Z", "A", VALIDATING, VALIDATING]) == [VALIDATING, "A", "Z"]


def test_each_status_has_one_colour_and_failures_the_warning_ones() -> None:
    colours = {status: charts.status_colour(status) for status in EVERY_STATUS}
    assert colours == {
        VALIDATING: "#56B4E9",
        VALIDATE_FAILED: "#D55E00",
        VALIDATE_SUCCESS: "#009E73",
        COMMIT_SUCCESS: "#0072B2",
        LEGACY_CREATING: "#BBBBBB",
        LEGACY_CREATE_FAILED: "#E69F00",
        LEGACY_COMPLETED: "#777777",
        UNKNOWN: charts.status_colour(UNKNOWN),
    }
    assert len(set(colours.values())) == len(colours), "two statuses share a colour"
    # Vermillion and orange, the warning colours, are the failures' alone, unknown ones included.
    warnings = {"#D55E00", "#E69F00"}
    assert {s for s, c in colours.items() if c in warnings} == {
        VALIDATE_FAILED,
        LEGACY_CREATE_FAILED,
    }
    assert warnings.isdisjoint(charts.UNKNOWN_COLOURS)
    assert set(charts.UNKNOWN_COLOURS).isdisjoint(charts.STATUS_COLOURS.values())


def test_every_chart_draws_each_status_in_its_one_colour() -> None:
    seen: dict[str, set[str]] = defaultdict(set)
    for name, fig in every_figure().items():
        for status, colours in status_colours(fig).items():
            assert colours == {charts.status_colour(status).lower()}, (name, status, colours)
            seen[status] |= colours
    # Four charts draw statuses; between them, every status in every one of its colours.
    assert set(seen) == set(EVERY_STATUS)
    assert all(len(colours) == 1 for colours in seen.values())


def test_stacked_charts_stack_in_lifecycle_order() -> None:
    figures = every_figure()
    for name in ("status_counts", "created_per_day"):
        (ax,) = figures[name].axes
        assert [c.get_label() for c in ax.containers] == LIFECYCLE_ORDER, name
    (ax,) = figures["backlog"].axes
    assert [c.get_label() for c in ax.collections] == LIFECYCLE_ORDER
    for name in ("status_counts", "backlog", "created_per_day"):
        (legend,) = figures[name].legends
        assert [t.get_text() for t in legend.get_texts()] == LIFECYCLE_ORDER, name


def test_every_chart_has_a_title_labelled_axes_and_its_legend_outside() -> None:
    for name, fig in every_figure().items():
        drawn(fig)
        renderer = fig.canvas.get_renderer()
        (ax,) = fig.axes
        assert ax.get_title(), name
        assert ax.get_xlabel() and ax.get_ylabel(), name
        (legend,) = fig.legends
        assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)), name
        assert ax.get_legend() is None, f"{name}: a legend inside the axes"


def test_axes_say_their_units() -> None:
    figures = every_figure()
    labels = {
        name: (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) for name, fig in figures.items()
    }
    assert labels == {
        "status_counts": ("jobs present", "tenant / user"),
        "backlog": ("time (UTC)", "jobs"),
        "durations": ("validation (minutes)", "tenant / user"),
        "distribution": ("validation (minutes)", "samples"),
        "pass_rate": ("share of first validations with a verdict (%)", "tenant / user"),
        "created_per_day": ("day created (UTC)", "jobs created"),
        "timeline": ("time (UTC)", "status"),
    }


def test_times_are_shown_in_utc_and_say_so() -> None:
    # Whatever zone matplotlib would otherwise use, the ticks are UTC's (T0 is 12:00 UTC).
    with matplotlib.rc_context({"timezone": "Asia/Shanghai"}):
        figures = {name: drawn(fig) for name, fig in every_figure().items()}
    shown = {}
    for name in ("backlog", "timeline"):
        (ax,) = figures[name].axes
        shown[name] = (
            ax.xaxis.get_major_formatter().get_offset(),
            [t.get_text() for t in ax.get_xticklabels()],
        )
    assert shown == {
        "backlog": (
            "2026-11-28 12:02 UTC",
            ["12:00", "15", "30", "45", "12:01", "15", "30", "45", "12:02"],
        ),
        # Up to the open interval's last observation (12:03), with a margin.
        "timeline": (
            "2026-11-28 12:03 UTC",
            ["12:00", "30", "12:01", "30", "12:02", "30", "12:03"],
        ),
    }
    assert figures["backlog"].axes[0].get_title() == (
        "Backlog: jobs in each status, 2026-11-28 12:00:00 UTC to 2026-11-28 12:02:00 UTC"
    )
    assert figures["status_counts"].axes[0].get_title() == (
        "Jobs present by status, per tenant / user as of 2026-11-28 12:00:30 UTC"
    )


def test_owners_read_tenant_slash_user() -> None:
    assert charts.owner_label("acme", "etl") == "acme / etl"
    assert charts.owner_label("acme", None) == "acme (all users)"
    assert charts.owner_label("acme", float("nan")) == "acme (all users)"
    (ax,) = charts.status_counts(COUNTS).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["acme / etl", "zhou / ops (stale)"]
    (ax,) = charts.pass_rate(RATES).axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "acme / etl\n2 of 3 passed, 1 validating",
        "acme / ops\n0 of 0 passed, 2 validating",
        "zhou (all users)\n1 of 4 passed, 0 validating",
    ]


@pytest.mark.parametrize(
    ("seconds", "unit"),
    [
        (0.0, "seconds"),
        (119.0, "seconds"),
        (120.0, "minutes"),
        (7199.0, "minutes"),
        (7200.0, "hours"),
        (172800.0, "days"),
    ],
)
def test_durations_are_shown_in_the_largest_unit_they_span_twice(seconds: float, unit: str) -> None:
    assert charts.duration_unit(seconds)[0] == unit


def test_distributions_mark_p50_and_p90() -> None:
    (ax,) = charts.distribution(SAMPLES, "validation").axes
    marks = {line.get_label(): list(line.get_xdata()) for line in ax.get_lines()}
    # quantile_cont of 60, 120, 180, 240, 600 s: 180 s, and 240 + 0.6 * 360 = 456 s.
    assert marks == {"p50 = 3 minutes": [3.0, 3.0], "p90 = 7.6 minutes": [7.6, 7.6]}
    assert ax.get_title() == (
        "validation: 5 samples (midpoints; median width of their bounds 1 minutes)"
    )


def test_durations_chart_draws_each_percentile_within_its_bounds_and_the_jobs_in_progress() -> None:
    fig = charts.durations(BOUNDS, "validation")
    (ax,) = fig.axes
    p50, p90 = ax.containers
    # Rows with samples only (acme / ops has none); minutes.
    assert list(p50.lines[0].get_xdata()) == [2.0, 95 / 60]
    # Each bar spans the p50's bounds: 90..150 s and 65..125 s, as errorbar computes them.
    assert [list(seg[:, 0]) for seg in p50.lines[2][0].get_segments()] == [
        [1.5, 2.5],
        [95 / 60 - 30 / 60, 95 / 60 + 30 / 60],
    ]
    assert list(p90.lines[0].get_xdata()) == [128 / 60, 95 / 60]
    (waiting,) = ax.collections[-1:]
    assert [list(xy) for xy in waiting.get_offsets()] == [[200 / 60, 0.0], [400 / 60, 1.0]]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "acme / etl\n3 measured, 1 in progress",
        "acme / ops\n0 measured, 2 in progress",
        "zhou / ops\n1 measured, 0 in progress",
    ]
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "p50 (bar: the true p50 lies within)",
        "p90 (bar: the true p90 lies within)",
        "longest in progress so far\n(a lower bound: not measured yet)",
    ]


def test_pass_rate_bars_are_shares_in_the_success_and_failure_colours() -> None:
    (ax,) = charts.pass_rate(RATES).axes
    passed, failed = ax.containers
    assert [p.get_width() for p in passed.patches] == [200 / 3, 0.0, 25.0]
    assert [p.get_x() for p in failed.patches] == [200 / 3, 0.0, 25.0]
    # matplotlib keeps a stacked bar's width as (left + width) - left: the ends, to 1e-9.
    assert [round(p.get_x() + p.get_width(), 9) for p in failed.patches] == [100.0, 0.0, 100.0]
    assert {to_hex(p.get_facecolor()) for p in passed.patches} == {
        charts.status_colour(VALIDATE_SUCCESS).lower()
    }
    assert {to_hex(p.get_facecolor()) for p in failed.patches} == {
        charts.status_colour(VALIDATE_FAILED).lower()
    }
    assert [t.get_text() for t in ax.texts] == ["67 %", "no verdict yet", "25 %"]


def test_the_timeline_draws_an_open_interval_to_the_last_observation() -> None:
    (ax,) = charts.timeline(TIMELINE).axes
    bars = {c.get_label(): c.patches for c in ax.containers}
    assert list(bars) == [VALIDATING, VALIDATE_FAILED, UNKNOWN]
    (open_interval,) = bars[UNKNOWN]
    assert open_interval.get_width() == 0.0  # seen once, at its start: a tick marks it
    assert [round(p.get_width() * 86400) for p in bars[VALIDATING]] == [60, 60]


def test_nothing_to_draw_says_what_and_why() -> None:
    assert charts.nothing_to_draw("validation per tenant", "no sample yet") == (
        "Nothing to draw: validation per tenant: no sample yet."
    )


def test_the_rules_need_no_matplotlib() -> None:
    # The product installs without the notebooks extra: charts imports matplotlib only
    # to draw, so the package, its reading API and the rules load without it.
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import pandas as pd\n"
        "from drs_pipeline import charts, explore\n"
        "print(charts.status_colour('ASYNC_JOB_VALIDATE_FAILED'), charts.owner_label('a', 'b'))\n"
        "try:\n"
        "    charts.backlog(pd.DataFrame({'instant': [pd.Timestamp.now('UTC')], "
        "'status': ['X'], 'jobs': [1]}))\n"
        "except ImportError:\n"
        "    print('drawing needs matplotlib')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["#D55E00 a / b", "drawing needs matplotlib"]
