"""Asking the API for known jobs by id: the only proof that a job is gone.

A listing can miss a live job (drift, ties, an answer that is wrong once), so a
job the history holds as present and a listing lacks is asked for by id. Only an
answer clearly about that job counts (docs/drs-api.md, "Filters"):

* absent: a well-formed 200 with ``total_count`` 0 and no job, or HTTP 400
  ``DRS.10000010`` ("job does not exist");
* present: a 200 listing exactly that job, and only it;
* anything else is inconclusive: an answer listing other jobs or a count above
  one (a server that ignores the filter), any other error.

One answer can be wrong once too, so a job is gone only when two answers say so;
and two *controls*, jobs the listing has just seen, are asked for beside them:
if both come back absent, the server's absences prove nothing (one may really
have left meanwhile). One inconclusive answer makes every absence of the
project unproven.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drs_pipeline.drs.client import DrsClient, Page, ProjectTarget
from drs_pipeline.drs.errors import DrsApiError, DrsError
from drs_pipeline.drs.listing import job_id_of

JOB_DOES_NOT_EXIST = "DRS.10000010"


@dataclass(frozen=True)
class Absence:
    """What asking for each missing job by id found out."""

    gone: frozenset[str]
    # Responses that showed a job after all; they count as observations.
    found: tuple[Page, ...]
    # Why the answers cannot be believed, if one of them could not; then ``gone``
    # is empty.
    inconclusive: str | None = None


CONTROLS = 2


def jobs_settled_by(requests: int) -> int:
    """How many missing jobs ``requests`` by-id requests can settle: two answers
    each, and the controls."""
    return max(0, (requests - CONTROLS) // 2)


async def confirm_absent(
    client: DrsClient,
    target: ProjectTarget,
    job_ids: Iterable[str],
    *,
    controls: Sequence[str] = (),
) -> Absence:
    """Ask for each job by id (twice for those answered absent) and for each of
    ``controls``, concurrently within the client's request slots."""
    ids = sorted(job_ids)
    first = await asyncio.gather(*(_ask(client, target, job_id) for job_id in [*ids, *controls]))
    found = [answer for answer in first if isinstance(answer, Page)]
    doubts = [answer for answer in first if isinstance(answer, str)]
    if controls and all(answer is None for answer in first[len(ids) :]):
        doubts.insert(
            0,
            f"jobs {', '.join(controls)}, listed in this sync, were answered absent by id: "
            "no absence can be proven",
        )
    absent_once = [job_id for job_id, answer in zip(ids, first, strict=False) if answer is None]
    second = await asyncio.gather(*(_ask(client, target, job_id) for job_id in absent_once))
    found += [answer for answer in second if isinstance(answer, Page)]
    doubts += [answer for answer in second if isinstance(answer, str)]
    if doubts:
        more = f" (and {len(doubts) - 1} more)" if len(doubts) > 1 else ""
        return Absence(frozenset(), tuple(found), f"{doubts[0]}{more}")
    gone = {job_id for job_id, answer in zip(absent_once, second, strict=True) if answer is None}
    return Absence(frozenset(gone), tuple(found))


async def _ask(client: DrsClient, target: ProjectTarget, job_id: str) -> Page | str | None:
    """The page showing the job, None when it is proven absent, else why not."""
    try:
        page = await client.fetch_page(target, offset=0, limit=1, async_job_id=job_id)
    except DrsApiError as exc:
        if exc.status_code == 400 and exc.error_code == JOB_DOES_NOT_EXIST:
            return None
        return f"could not confirm missing jobs: {exc}"
    except DrsError as exc:
        return f"could not confirm missing jobs: {exc}"
    listed = list(map(job_id_of, page.jobs))
    if page.total_count == 0 and not listed:
        return None
    if page.total_count == 1 and listed == [job_id]:
        return page
    request = f" (X-Request-Id {page.request_id})" if page.request_id else ""
    return (
        f"the async_job_id filter was ignored: asked for job {job_id}, the answer listed "
        f"{len(listed)} job(s) of total_count {page.total_count}{request}; "
        "no absence can be proven"
    )
