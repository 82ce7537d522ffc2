"""The world without HTTP: determinism, visibility, lifecycle, speed, scripting."""

from __future__ import annotations

import itertools
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from drs_pipeline.drs import statuses
from drs_pipeline.simulator import ManualClock, SimProject, World, WorldSettings
from drs_pipeline.simulator.model import ANCHOR_2026, REGIONS, format_create_time
from drs_pipeline.simulator.stream import TIE_BLOCK
from tests.simulator.helpers import T0

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def ids(world: World, t: float, k: int = 0) -> list[str]:
    return [j.async_job_id for j in world.list_jobs(world.projects[k].project_id, t)]


def test_default_projects_come_from_the_seed() -> None:
    a, b, c = WorldSettings(), WorldSettings(), WorldSettings(seed=7)
    assert a.projects == b.projects
    assert len(a.projects) == 4
    assert {p.region for p in a.projects} == set(REGIONS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.project_id) for p in a.projects)
    assert not set(a.project_ids()) & set(c.project_ids())
    with pytest.raises(ValueError):
        WorldSettings(projects=(SimProject("NOT-HEX", "cn-south-2"),))


def test_same_settings_same_jobs_at_the_same_time() -> None:
    one, two = World(WorldSettings()), World(WorldSettings())
    for t in (T0, T0 + 3600.25, T0 + 86400 * 3):
        for k in range(4):
            assert ids(one, t, k) == ids(two, t, k)
            assert ids(one, t, k)
    one_records = [j.record_at(T0) for j in one.list_jobs(one.projects[0].project_id, T0)]
    two_records = [j.record_at(T0) for j in two.list_jobs(two.projects[0].project_id, T0)]
    assert one_records == two_records
    other = World(WorldSettings(seed=43))
    assert not set(ids(one, T0)) & set(ids(other, T0))


def test_same_jobs_in_another_process() -> None:
    code = (
        "import json; from drs_pipeline.simulator import World, WorldSettings; "
        f"w = World(WorldSettings(seed=5)); p = w.projects[2].project_id; "
        f"print(json.dumps([j.record_at({T0!r}) for j in w.list_jobs(p, {T0!r})]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True)
    here = World(WorldSettings(seed=5))
    expected = [j.record_at(T0) for j in here.list_jobs(here.projects[2].project_id, T0)]
    assert json.loads(out.stdout) == expected


def test_visible_jobs_and_their_order() -> None:
    settings = WorldSettings()
    world = World(settings)
    pid = world.projects[0].project_id
    asc = world.list_jobs(pid, T0, sort_dir="asc")
    desc = world.list_jobs(pid, T0, sort_dir="desc")
    assert desc == asc[::-1]
    expected = settings.retention_s / settings.arrival_interval_s  # 288
    assert 0.9 * expected < len(asc) <= expected + 1
    assert [j.create_time for j in asc] == sorted(j.create_time for j in asc)
    for job in asc:
        assert job.visible_at(T0)
        assert T0 - settings.retention_s < job.create_time <= T0
    # What the index range leaves out is really invisible.
    first, last = asc[0].index, asc[-1].index
    assert first is not None and last is not None
    for index in (first - 1, last + 1):
        assert not world.stream_job(pid, index).visible_at(T0) or world.stream_job(
            pid, index
        ).vanish_at == pytest.approx(T0, abs=1e-6)


def test_listing_costs_visible_jobs_not_history() -> None:
    # A billion jobs since the anchor: listing must not walk them.
    settings = WorldSettings(anchor=T0 - 1e9 * 600.0)
    world = World(settings)
    started = time.perf_counter()
    jobs = world.list_jobs(world.projects[0].project_id, T0)
    assert time.perf_counter() - started < 1.0
    assert 250 < len(jobs) <= 289
    assert min(j.index or 0 for j in jobs) > 999_999_000


def test_nothing_before_the_anchor() -> None:
    world = World(WorldSettings())
    pid = world.projects[0].project_id
    assert world.list_jobs(pid, ANCHOR_2026 - 1) == []
    assert 130 < len(world.list_jobs(pid, ANCHOR_2026 + 86400)) <= 145


def test_records_have_five_strings_in_both_time_formats() -> None:
    world = World(WorldSettings())
    formats: Counter[str] = Counter()
    for project in world.projects:
        for job in world.list_jobs(project.project_id, T0):
            record = job.record_at(T0)
            assert set(record) == {
                "async_job_id",
                "status",
                "domain_name",
                "user_name",
                "create_time",
            }
            assert all(isinstance(v, str) for v in record.values())
            assert UUID4.match(record["async_job_id"])
            if job.time_format == "iso":
                assert ISO.match(record["create_time"])
                assert record["create_time"] == time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(job.create_time))
                )
            else:
                assert record["create_time"] == str(int(job.create_time * 1000))
            formats[job.time_format] += 1
    share = formats["epoch_ms"] / sum(formats.values())
    assert 0.12 < share < 0.28
    # One account per project (project k: domains[k % 3]), several users in it.
    settings = WorldSettings()
    for k, project in enumerate(world.projects):
        domain, users = settings.domains[k % len(settings.domains)]
        assert settings.domain_of(project.project_id) == (domain, users)
        listed = world.list_jobs(project.project_id, T0)
        assert {j.domain_name for j in listed} == {domain}
        assert {j.user_name for j in listed} == set(users)


def test_lifecycle_timelines() -> None:
    settings = WorldSettings()
    world = World(settings)
    pid = world.projects[0].project_id
    allowed = {
        statuses.VALIDATING: {statuses.VALIDATE_FAILED, statuses.VALIDATE_SUCCESS},
        statuses.VALIDATE_FAILED: {statuses.VALIDATING},
        statuses.VALIDATE_SUCCESS: {statuses.COMMIT_SUCCESS},
        statuses.COMMIT_SUCCESS: set(),
    }
    finals: Counter[str] = Counter()
    for index in range(3000):
        job = world.stream_job(pid, index)
        timeline = job.timeline
        assert timeline[0][0] == job.create_time
        assert [at for at, _ in timeline] == sorted(at for at, _ in timeline)
        finals[timeline[-1][1]] += 1
        if timeline[0][1] in statuses.LEGACY:
            assert len(timeline) == 1
            continue
        assert timeline[0][1] == statuses.VALIDATING
        validating_s = timeline[1][0] - timeline[0][0]
        assert 30 <= validating_s <= 600
        for (_, before), (_, after) in itertools.pairwise(timeline):
            assert after in allowed[before]
        assert sum(1 for _, s in timeline if s == statuses.VALIDATING) <= 3
    assert 0 < sum(finals[s] for s in statuses.LEGACY) < 3000 * 0.025
    assert 0.55 < finals[statuses.COMMIT_SUCCESS] / 3000 < 0.85
    assert finals[statuses.VALIDATE_FAILED] > 0 and finals[statuses.VALIDATE_SUCCESS] > 0


def test_statuses_move_with_the_clock() -> None:
    clock = ManualClock(T0)
    world = World(WorldSettings(vanish_fraction=0.0), clock)
    pid = world.projects[0].project_id
    newest = world.list_jobs(pid, T0)[0]
    seen = []
    for _ in range(60):
        seen.append(newest.status_at(clock.now()))
        clock.advance(900)
    assert len(set(seen)) >= 2
    assert seen[0] in (statuses.VALIDATING, *statuses.LEGACY)
    # Over a day, all four current statuses show up somewhere in the project.
    shown = set()
    for step in range(0, 86400, 1800):
        shown |= {j.status_at(T0 + step) for j in world.list_jobs(pid, T0 + step)}
    assert set(statuses.CURRENT) <= shown


def test_speed_divides_every_world_duration() -> None:
    slow, fast = WorldSettings(), WorldSettings(speed=60.0)
    assert fast.wall_interval_s == 10.0 and fast.wall_retention_s == 48 * 60.0
    slow_world, fast_world = World(slow), World(fast)
    pid = slow.projects[0].project_id
    for index in (0, 1, 17, 500):
        a, b = slow_world.stream_job(pid, index), fast_world.stream_job(pid, index)
        assert a.async_job_id == b.async_job_id
        assert b.create_time - fast.anchor == pytest.approx((a.create_time - slow.anchor) / 60)
        durations_a = [at - a.create_time for at, _ in a.timeline]
        durations_b = [at - b.create_time for at, _ in b.timeline]
        assert durations_b == pytest.approx([d / 60 for d in durations_a])
        assert [s for _, s in a.timeline] == [s for _, s in b.timeline]
    # 48 minutes of wall time hold two days of jobs.
    t = fast.anchor + 10 * 86400
    assert 250 < len(fast_world.list_jobs(pid, t)) <= 289


def test_early_vanishing() -> None:
    settings = WorldSettings(vanish_fraction=0.5)
    world = World(settings)
    pid = world.projects[0].project_id
    jobs = world.list_jobs(pid, T0)
    assert 120 < len(jobs) < 240
    early = [
        i
        for i in range(1000)
        if (v := world.stream_job(pid, i).vanish_at) is not None
        and v < world.stream_job(pid, i).create_time + settings.wall_retention_s
    ]
    assert 350 < len(early) < 650


def test_scripted_jobs() -> None:
    clock = ManualClock(T0)
    world = World(WorldSettings(streaming=False), clock)
    pid = world.projects[1].project_id
    assert world.list_jobs(pid, T0) == []
    job = world.add_job(pid, async_job_id="job-1", domain_name="d", user_name="u")
    assert world.list_jobs(pid, T0) == [job]
    assert job.record_at(T0) == {
        "async_job_id": "job-1",
        "status": statuses.VALIDATING,
        "domain_name": "d",
        "user_name": "u",
        "create_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(T0))),
    }
    with pytest.raises(ValueError):
        world.add_job(pid, async_job_id="job-1")
    clock.advance(10)
    world.set_status(pid, "job-1", statuses.COMMIT_SUCCESS)
    assert job.status_at(T0) == statuses.VALIDATING
    assert job.status_at(T0 + 10) == statuses.COMMIT_SUCCESS
    world.set_owner(pid, "job-1", domain_name="d2")
    assert job.record_at(clock.now())["domain_name"] == "d2"
    assert job.record_at(clock.now())["user_name"] == "u"
    world.vanish(pid, "job-1")
    assert world.list_jobs(pid, clock.now()) == []
    assert world.list_jobs(pid, T0 + 5) == [job]  # still there before it vanished
    world.restore(pid, "job-1")
    assert world.list_jobs(pid, clock.now()) == [job]
    future = world.add_job(pid, create_time=T0 + 3600, time_format="epoch_ms")
    assert future not in world.list_jobs(pid, clock.now())
    assert future.record_at(T0 + 3600)["create_time"] == str(int((T0 + 3600) * 1000))
    with pytest.raises(KeyError):
        world.set_status(pid, "nope", statuses.COMMIT_SUCCESS)
    with pytest.raises(KeyError):
        world.add_job("f" * 32)


def test_scripting_stream_jobs_sticks() -> None:
    clock = ManualClock(T0)
    world = World(WorldSettings(vanish_fraction=0.0), clock, job_cache=5)
    pid = world.projects[0].project_id
    jobs = world.list_jobs(pid, T0)
    target, other = jobs[3], jobs[4]
    assert world.get_job(pid, target.async_job_id) is target or (
        world.get_job(pid, target.async_job_id).async_job_id == target.async_job_id
    )
    world.set_status(pid, target.async_job_id, "SOMETHING_NEW")
    world.set_owner(pid, target.async_job_id, user_name="new-user")
    world.vanish(pid, other.async_job_id)
    # The tiny cache has long evicted them; the changes must survive regeneration.
    world.list_jobs(world.projects[1].project_id, T0)
    listed = {j.async_job_id: j for j in world.list_jobs(pid, T0 + 1)}
    assert other.async_job_id not in listed
    assert listed[target.async_job_id].status_at(T0 + 1) == "SOMETHING_NEW"
    assert listed[target.async_job_id].user_name == "new-user"
    world.restore(pid, other.async_job_id)
    assert other.async_job_id in {j.async_job_id for j in world.list_jobs(pid, T0 + 1)}
    # A job that does not exist yet cannot be scripted.
    future = world.stream_job(pid, (jobs[0].index or 0) + 5)
    with pytest.raises(KeyError):
        world.get_job(pid, future.async_job_id)


def test_small_cache_and_clock_going_back_change_nothing() -> None:
    settings = WorldSettings()
    big, small = World(settings), World(settings, job_cache=3)
    pid = settings.projects[0].project_id
    small.list_jobs(pid, T0 + 86400)  # slide the window forward first
    for t in (T0, T0 + 50, T0 - 86400 * 2):
        a = [j.record_at(t) for j in big.list_jobs(pid, t)]
        b = [j.record_at(t) for j in small.list_jobs(pid, t)]
        assert a == b


def test_page_equals_slices_of_the_listing_with_scripted_ties() -> None:
    world = World(WorldSettings())
    pid = world.projects[0].project_id
    listing = world.list_jobs(pid, T0, sort_dir="asc")
    tie = listing[10]
    world.add_job(pid, async_job_id="00000000-tie-before", create_time=tie.create_time)
    world.add_job(pid, async_job_id="ffffffff-tie-after", create_time=tie.create_time)
    world.add_job(pid, create_time=T0 - 1)
    for sort_dir in ("asc", "desc"):
        full = world.list_jobs(pid, T0, sort_dir=sort_dir)
        assert len(full) == len(listing) + 3
        keys = [(j.create_time, j.async_job_id) for j in full]
        assert keys == sorted(keys, reverse=sort_dir == "desc")
        for offset, limit in ((0, 7), (5, 20), (len(full) - 3, 10), (len(full) + 5, 10)):
            total, page = world.page(pid, T0, offset=offset, limit=limit, sort_dir=sort_dir)
            assert total == len(full)
            assert page == full[offset : offset + limit]


def test_filters() -> None:
    world = World(WorldSettings())
    pid = world.projects[0].project_id
    everything = world.list_jobs(pid, T0)
    some = everything[17]
    assert world.list_jobs(pid, T0, async_job_id=some.async_job_id) == [some]
    assert world.list_jobs(pid, T0, async_job_id="nope") == []
    for status in statuses.CURRENT:
        got = world.list_jobs(pid, T0, status=status)
        assert got == [j for j in everything if j.status_at(T0) == status]
    both = world.list_jobs(pid, T0, domain_name=some.domain_name, user_name=some.user_name)
    assert some in both
    assert all(j.domain_name == some.domain_name and j.user_name == some.user_name for j in both)


def test_warm_generates_every_visible_job() -> None:
    world = World(WorldSettings(projects=(SimProject("a" * 32, "cn-south-2"),)))
    assert 250 < world.warm(T0) <= 289


def test_ties_share_create_times_and_keep_the_stream_sorted() -> None:
    settings = WorldSettings(tie_share=0.5)
    world = World(settings)
    pid = world.projects[0].project_id
    jobs = [world.stream_job(pid, i) for i in range(4000)]
    times = [j.create_time for j in jobs]
    assert times == sorted(times)
    tied = [i for i in range(1, 4000) if times[i] == times[i - 1]]
    # tie_share of the jobs, less the first of each block of TIE_BLOCK.
    assert 0.45 < len(tied) / 3999 < 0.54
    assert not [i for i in tied if i % TIE_BLOCK == 0]
    for i in tied:
        for time_format in ("iso", "epoch_ms"):
            same = format_create_time(times[i], time_format)
            assert same == format_create_time(times[i - 1], time_format)
    # Runs of several jobs, all at their head's time.
    assert max(len(list(g)) for _, g in itertools.groupby(times)) >= 5
    # Random access (walking back to the run's head) agrees, in any order, any world.
    other = World(WorldSettings(tie_share=0.5))
    for i in (3999, 17, 2500, 64, 65, 1):
        assert other.stream_job(pid, i) == jobs[i]
    # Without ties, times strictly increase.
    plain = World(WorldSettings())
    plain_times = [plain.stream_job(pid, i).create_time for i in range(2000)]
    assert all(b > a for a, b in itertools.pairwise(plain_times))


@pytest.mark.parametrize("tie_share", [0.5, 0.95])
def test_tied_worlds_list_exactly_the_visible_jobs_by_time_then_id(tie_share: float) -> None:
    settings = WorldSettings(tie_share=tie_share, speed=60.0)
    world = World(settings)
    pid = world.projects[1].project_id
    for t in (settings.anchor + 30, T0, T0 + 1234.5, T0 + 86400):
        listed = world.list_jobs(pid, t, sort_dir="asc")
        hi = int((t - settings.anchor) / settings.wall_interval_s) + TIE_BLOCK
        lo = max(0, hi - int(settings.wall_retention_s / settings.wall_interval_s) - TIE_BLOCK - 2)
        visible = [world.stream_job(pid, i) for i in range(lo, hi)]
        expected = sorted(
            (j for j in visible if j.visible_at(t)), key=lambda j: (j.create_time, j.async_job_id)
        )
        assert listed == expected
        assert world.list_jobs(pid, t, sort_dir="desc") == expected[::-1]
        assert len({j.create_time for j in listed}) < len(listed) or len(listed) < 2
        for sort_dir in ("asc", "desc"):
            full = world.list_jobs(pid, t, sort_dir=sort_dir)
            for offset, limit in ((0, 7), (5, 3), (len(full) - 4, 10), (len(full), 5)):
                total, page = world.page(pid, t, offset=offset, limit=limit, sort_dir=sort_dir)
                assert (total, page) == (len(full), full[offset : offset + limit])
            user = settings.domain_of(pid)[1][0]
            filtered = world.list_jobs(pid, t, sort_dir=sort_dir, user_name=user)
            assert filtered == [j for j in full if j.user_name == user]


def test_a_shuffled_page_touches_only_the_tie_groups_at_its_edges() -> None:
    settings = WorldSettings(
        projects=(SimProject("d" * 32, "cn-south-2"),),
        arrival_interval_s=1.0,
        retention_s=100_000.0,
        vanish_fraction=0.0,
        tie_share=0.8,
    )
    world = World(settings)
    rng = random.Random(1)
    total, page = world.page("d" * 32, T0, offset=50_000, limit=10, shuffle_ties=rng)
    assert total > 99_000 and len(page) == 10
    # The page, plus at most a run of TIE_BLOCK jobs (less the page's own) at each edge.
    assert len(world._cache) <= 10 + 2 * TIE_BLOCK


def test_add_job_defaults_to_the_projects_account() -> None:
    world = World(WorldSettings(streaming=False), ManualClock(T0))
    for k, project in enumerate(world.projects):
        job = world.add_job(project.project_id)
        domain, users = WorldSettings().domains[k % 3]
        assert (job.domain_name, job.user_name) == (domain, users[0])


def test_a_skewed_world_reads_its_clock_off_by_the_skew() -> None:
    clock = ManualClock(T0)
    world = World(WorldSettings(clock_skew_s=-30.0), clock)
    assert world.now() == T0 - 30
    clock.advance(5)
    job = world.add_job(world.projects[0].project_id)
    assert (world.now(), job.create_time) == (T0 - 25, T0 - 25)
    with pytest.raises(ValueError, match="clock_skew_s must be a finite number"):
        WorldSettings(clock_skew_s=float("inf"))
