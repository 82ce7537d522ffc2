"""The request slots (``drs.slots``): handed out by project rank, cancellation-safe."""

from __future__ import annotations

import asyncio

from drs_pipeline.drs.slots import PrioritySlots


def test_slots_go_to_the_lowest_rank_first_and_survive_cancellation() -> None:
    async def main() -> list[int]:
        slots = PrioritySlots(1)
        served: list[int] = []

        async def request(rank: int) -> None:
            async with slots.hold(rank):
                served.append(rank)
                await asyncio.sleep(0.001)

        async with slots.hold(0):
            tasks = [asyncio.ensure_future(request(rank)) for rank in (5, 3, 9, 1, 3)]
            await asyncio.sleep(0.01)
            tasks[2].cancel()  # rank 9 gives up while waiting
        await asyncio.gather(*tasks, return_exceptions=True)
        async with slots.hold(0):  # and nothing leaked: the slot is free again
            pass
        return served

    assert asyncio.run(main()) == [1, 3, 3, 5]
