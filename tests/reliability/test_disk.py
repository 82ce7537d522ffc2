"""Matrix row 9: the disk full, or the database not writable.

As root, file permissions stop nothing, so the disk is made to refuse writes
two ways: a per-process file size limit (RLIMIT_FSIZE, in a child process that
ignores SIGXFSZ so a refused write fails with EFBIG instead of killing it),
which works anywhere; and a small tmpfs (ENOSPC, then remounted read-only),
where ``mount`` is allowed. Either way the sync must fail saying why, and the
history it had must come through intact and keep working.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drs_pipeline.config import load_settings_file
from drs_pipeline.drs import statuses
from drs_pipeline.sync import run_sync

from ..helpers import QUICK_RETRY, Simulator, assert_history_invariants, query, write_config
from .helpers import add_jobs, child_env

LIMITED_CHILD = """
import resource, signal, sys
from pathlib import Path
from drs_pipeline.config import load_settings_file
from drs_pipeline.sync import run_sync

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, EFBIG
config, database, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
settings = load_settings_file(config)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
report = run_sync(settings, database)
for project in report.projects:
    print(project.run.outcome, project.run.error, flush=True)
"""

HISTORY_TABLES = ("async_jobs", "async_job_history", "rejected_records")
# Jobs each project gains: a merge of them needs far more room than the database file
# holds after the first sync (its blocks of 256 KB per table included).
ADDED = 4000


def history(database: Path) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: query(database, f"SELECT * FROM drs.{table} ORDER BY ALL")
        for table in HISTORY_TABLES
    }


def grow_the_world(simulator: Simulator, jobs: dict[str, list[str]]) -> None:
    """Changes whose merge needs far more room than the limits below allow."""
    for project_id, job_ids in jobs.items():
        simulator.world.set_status(project_id, job_ids[0], statuses.VALIDATE_FAILED)
        simulator.world.vanish(project_id, job_ids[1])
        add_jobs(simulator, project_id, ADDED, domain_name="d" * 200, user_name="u" * 200)
    simulator.clock.advance(60)


def test_a_file_size_limit_fails_the_sync_clearly_and_the_history_survives(
    simulator: Simulator, tmp_path: Path, database: Path
) -> None:
    project_ids = simulator.project_ids[:2]
    jobs = {project_id: add_jobs(simulator, project_id, 10) for project_id in project_ids}
    config = write_config(tmp_path / "drs.yaml", simulator, project_ids, page_size=1000)
    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token})
    assert run_sync(settings, database, retry=QUICK_RETRY).all_ok
    before = history(database)
    grow_the_world(simulator, jobs)
    wal = database.with_name(database.name + ".wal")
    limit = database.stat().st_size  # no file may grow past the database as it is

    done = subprocess.run(
        [sys.executable, "-c", LIMITED_CHILD, str(config), str(database), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(DRS_AUTH_TOKEN=simulator.token),
    )

    # The error says why: in each project's recorded error, or, when not even that
    # could be written, in the exception the sync ended with.
    said = done.stdout if done.returncode == 0 else done.stderr.strip().splitlines()[-1]
    assert "File too large" in said, (done.stdout + done.stderr)[-3000:]
    assert "ok" not in done.stdout.split(), "no project can have landed"
    # The history as it was: open, sound, unchanged, and the next sync with room works.
    assert history(database) == before
    assert_history_invariants(database)
    assert not wal.exists() or wal.stat().st_size <= limit
    report = run_sync(settings, database, retry=QUICK_RETRY)
    assert report.all_ok
    assert query(database, "SELECT count(*) FROM drs.async_jobs WHERE NOT is_gone") == [
        (2 * (10 - 1 + ADDED),)
    ]
    assert_history_invariants(database)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs, or a skip where mounting is not allowed."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mount = shutil.which("mount")
    done = (
        subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
        )
        if mount
        else None
    )
    if done is None or done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() if done else 'no mount'}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_a_full_disk_then_a_read_only_one_fail_clearly_and_the_history_survives(
    simulator: Simulator, tmp_path: Path, small_disk: Path
) -> None:
    project_ids = simulator.project_ids[:2]
    jobs = {project_id: add_jobs(simulator, project_id, 10) for project_id in project_ids}
    config = write_config(tmp_path / "drs.yaml", simulator, project_ids, page_size=1000)
    settings = load_settings_file(config, {"DRS_AUTH_TOKEN": simulator.token})
    database = small_disk / "history.duckdb"
    assert run_sync(settings, database, retry=QUICK_RETRY).all_ok
    before = history(database)
    grow_the_world(simulator, jobs)
    # Fill what is left of the disk but a little.
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * max(0, free - 64 * 1024))

    try:
        report = run_sync(settings, database, retry=QUICK_RETRY)
    except Exception as exc:  # the failure could not even be recorded: it is raised
        said = f"{type(exc).__name__}: {exc}"
    else:
        assert not any(p.run.outcome == "ok" for p in report.projects)
        said = " ".join(p.run.error or "" for p in report.projects)
    assert "No space left on device" in said, said

    assert history(database) == before
    assert_history_invariants(database)

    # Read-only: the sync cannot even open the file for writing, and says so.
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(Exception, match="Read-only file system"):
        run_sync(settings, database, retry=QUICK_RETRY)
    assert history(database) == before  # readers still read it
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert run_sync(settings, database, retry=QUICK_RETRY).all_ok
    assert_history_invariants(database)
