"""The provider's first questions wait for a block to be out (energy_async.slots)."""

from __future__ import annotations

import time

import pytest

from energy_async import CatFee, Coordinator, ProviderSession, Verdict, Verifier
from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox
from energy_async.slots import (
    BLOCK_MS,
    BLOCK_OUT_MS,
    MAINNET_GENESIS_MS,
    NamingLead,
    SlotClock,
    first_poll_delay,
    next_poll_delay,
)

T = 1_800_000_000_000  # a slot time on mainnet's schedule (a multiple of 3 s)


def test_mainnet_slots_are_whole_multiples_of_three_seconds() -> None:
    assert MAINNET_GENESIS_MS % BLOCK_MS == 0 and T % BLOCK_MS == 0


@pytest.mark.parametrize(
    ("sent", "now", "phase", "delay"),
    [
        # Sent just after a slot: that block was already packing; the next one can hold it.
        (T + 10, T + 200, 0, (BLOCK_MS - 200 + BLOCK_OUT_MS) / 1000),
        # Sent just before a slot: the block of that slot can hold it.
        (T - 10, T + 190, 0, (BLOCK_OUT_MS - 190) / 1000),
        # Sent exactly at a slot: the next slot (a tx cannot be in a block stamped as it left).
        (T, T + 100, 0, (BLOCK_MS + BLOCK_OUT_MS - 100) / 1000),
        # The answer came after the block was out: ask at once.
        (T - 10, T + 900, 0, 0.0),
        # A chain whose slots fall a second later than mainnet's.
        (T + 10, T + 200, 1_000, (1_000 - 200 + BLOCK_OUT_MS) / 1000),
    ],
)
def test_first_poll_waits_for_the_first_block_after_the_create_left(
    sent: int, now: int, phase: int, delay: float
) -> None:
    assert first_poll_delay(now, sent, phase) == pytest.approx(delay)


@pytest.mark.parametrize(
    ("now", "interval", "phase", "delay"),
    [
        # A second from now is mid-slot: wait on to the next block out.
        (T + BLOCK_OUT_MS, 1.0, 0, 3.0),
        # Exactly a block out after the interval: no longer.
        (T + BLOCK_OUT_MS, 3.0, 0, 3.0),
        # Just past it: the one after.
        (T + BLOCK_OUT_MS + 1, 3.0, 0, 5.999),
        # Never sooner than the interval, never a block later.
        (T, 1.5, 0, 3.75),
        (T + 2_000, 0.5, 2_000, 0.75),
    ],
)
def test_later_polls_keep_the_pace_and_land_on_a_block_out(
    now: int, interval: float, phase: int, delay: float
) -> None:
    got = next_poll_delay(now, interval, phase)
    assert got == pytest.approx(delay)
    assert interval <= got + 1e-9 < interval + BLOCK_MS / 1000


def test_the_first_question_can_come_at_a_learned_lead_after_the_slot() -> None:
    # The same first slot after the create; asked 100 ms after it instead of 750.
    assert first_poll_delay(T + 10, T - 40, 0, lead_ms=100) == pytest.approx(0.09)
    assert first_poll_delay(T + 200, T + 10, 0, lead_ms=0) == pytest.approx(2.8)


@pytest.mark.parametrize(
    ("heard", "lead"),
    [
        ([], 750),  # the packing deadline: the block is surely out
        ([True], 725),
        ([True] * 40, 0),  # never before the slot itself
        ([True, True, False], 750),  # one early question undoes nine good ones, capped
        ([True] * 10 + [False], 725),
        ([False] * 3, 750),
    ],
)
def test_the_lead_moves_earlier_when_named_and_later_when_not(heard: list[bool], lead: int) -> None:
    naming = NamingLead()
    for named in heard:
        naming.heard(named)
    assert naming.lead_ms == lead


def test_no_schedule_until_the_node_clock_is_seen_keeping_our_pace() -> None:
    slots = SlotClock()
    assert slots.phase_ms is None  # nothing heard
    slots.saw_node_clock(T, T + 300)
    assert slots.phase_ms is None  # one sample says nothing of pace
    slots.saw_node_clock(T + 2_000, T + 2_300)
    assert slots.phase_ms is None  # too close to the first to tell
    slots.saw_node_clock(T + 3_000, T + 3_900)
    assert slots.phase_ms == 0  # mainnet's phase until a block says otherwise
    slots.saw_block(T + 1_000 + 3 * BLOCK_MS)
    assert slots.phase_ms == 1_000


def test_a_frozen_node_clock_gives_no_schedule() -> None:
    slots = SlotClock()
    for ours in range(0, 6_000, 500):
        slots.saw_node_clock(T, T + ours)  # the node's clock never moves
    assert slots.phase_ms is None


def test_a_sped_up_node_clock_gives_no_schedule() -> None:
    slots = SlotClock()
    for step in range(20):
        slots.saw_node_clock(T + step * 3_000, T + step * 300)  # ten times our pace
    assert slots.phase_ms is None


def test_a_node_clock_far_from_ours_stops_the_schedule_at_once() -> None:
    slots = SlotClock()
    slots.saw_node_clock(T, T)
    slots.saw_node_clock(T + 4_000, T + 4_000)
    assert slots.phase_ms == 0
    slots.saw_node_clock(T + 60_000, T + 5_000)  # jumped a minute ahead of ours
    assert slots.phase_ms is None
    slots.saw_node_clock(T + 6_000, T + 6_000)  # back: pace must be shown again
    assert slots.phase_ms is None


@pytest.mark.slow  # real chain speed: a block every 3 s, two orders, about 7 s of waiting
@pytest.mark.anyio
async def test_at_real_speed_the_provider_is_asked_once_the_block_is_out() -> None:
    sandbox = Sandbox(seed=5, speed=1.0)
    async with sandbox.serve() as urls:
        catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee)
        async with (
            ProviderSession(catfee) as session,
            Verifier(base_url=urls.trongrid) as verifier,
        ):
            # An answer three seconds ago in step with ours (as a running service has heard),
            # then a real one: the node keeps our pace; its head block gives the phase.
            earlier = time.time() * 1000 - 3_000
            verifier.slots.saw_node_clock(int(earlier) // 1000 * 1000, earlier)
            head = await verifier.head()
            assert verifier.slots.phase_ms == head.timestamp_ms % BLOCK_MS
            coordinator = Coordinator(session, verifier)
            results = [
                await coordinator.buy(target=sandbox.new_target(), energy=65_000, deadline=20.0)
                for _ in range(2)
            ]
    assert [result.verdict for result in results] == [Verdict.DELIVERED] * 2
    # The create, then one question, asked once the block holding the tx was out; the old
    # schedule (1 s, then 2.5 s after the answer) asked twice for a create sent early in a slot.
    assert [result.evidence.provider_calls for result in results] == [2, 2]
    # Each first question found the tx named: the next order's comes 25 ms earlier.
    assert coordinator.naming.lead_ms == 750 - 2 * 25
