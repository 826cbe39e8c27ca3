"""The chain's slot schedule on our own clock: when to ask a provider whether it named its tx.

A delegation broadcast as the provider takes an order can be in a block no sooner than the
first slot after the create was sent, and that block is finished by slot time + 750 ms
(java-tron's producer packs for at most half of half a slot: see ``watch/policy.py``). A
question before the provider has named its tx hears "not yet" and costs a call; one after the
packing deadline only delays the verdict. So the first question comes at a lead after that
slot which each provider's `NamingLead` learns (never past the packing deadline), and later
ones (at the policy's growing intervals) on the next block out after each interval, never
earlier than the policy's pace.

Slot times are ``genesis + k x 3 s``. Mainnet's genesis (1529891469000) is a multiple of 3 s,
so the phase starts at 0; every block timestamp read corrects it. The schedule needs the
node's clock to run with ours (NTP on both sides, as TRON's producers keep it), which is
learned from the node's ``Date`` headers: until two of them, at least ``_PACE_WINDOW_MS``
apart on our clock, agree with ours (a sandbox frozen or sped up never does), or when one
stops agreeing, there is no schedule and the policy's intervals alone apply.
"""

from __future__ import annotations

import math

__all__ = [
    "BLOCK_MS",
    "BLOCK_OUT_MS",
    "NamingLead",
    "SlotClock",
    "first_poll_delay",
    "next_poll_delay",
]

BLOCK_MS = 3_000  # BLOCK_PRODUCED_INTERVAL
BLOCK_OUT_MS = 750  # after its slot time a block is finished (the packing deadline)
MAINNET_GENESIS_MS = 1_529_891_469_000

_PACE_WINDOW_MS = 3_000  # node clock samples this far apart tell its pace from ours
# A Date header is whole seconds, truncated (RFC 9110), and arrives a round trip late: a node
# clock in step with ours reads up to a second and a round trip behind it.
_AGREEMENT_MS = 2_000


def first_poll_delay(
    now_ms: float, sent_ms: float, phase_ms: int, lead_ms: int = BLOCK_OUT_MS
) -> float:
    """Seconds from ``now_ms`` until ``lead_ms`` after the first slot after ``sent_ms`` (0 if
    that has passed): by default, until the first block that can hold the tx is out."""
    slot_after = _first_at_or_after(sent_ms + 1, phase_ms)
    return max(0.0, (slot_after + lead_ms - now_ms) / 1000)


def next_poll_delay(now_ms: float, interval: float, phase_ms: int) -> float:
    """Seconds from ``now_ms`` until the first block out at least ``interval`` seconds away."""
    earliest = now_ms + interval * 1000
    return (_first_at_or_after(earliest - BLOCK_OUT_MS, phase_ms) + BLOCK_OUT_MS - now_ms) / 1000


def _first_at_or_after(moment_ms: float, phase_ms: int) -> int:
    """The first slot time at or after ``moment_ms``."""
    return math.ceil((moment_ms - phase_ms) / BLOCK_MS) * BLOCK_MS + phase_ms


class SlotClock:
    """The chain's slot phase and whether the node's clock runs with ours, as read so far.

    One per Verifier (its reads teach it); `phase_ms` is None while there is no schedule.
    """

    def __init__(self) -> None:
        self._phase_ms = MAINNET_GENESIS_MS % BLOCK_MS
        self._anchor: tuple[int, float] | None = None  # (node ms, our ms) of the pace window
        self._in_step = False

    def saw_block(self, timestamp_ms: int) -> None:
        """A block's timestamp is its slot time."""
        self._phase_ms = timestamp_ms % BLOCK_MS

    def saw_node_clock(self, node_ms: int, our_ms: float) -> None:
        """A ``Date`` header (``node_ms``) from an answer received at ``our_ms``."""
        if abs(node_ms - our_ms) > _AGREEMENT_MS:
            self._anchor, self._in_step = None, False
            return
        if self._anchor is None:
            self._anchor = (node_ms, our_ms)
            return
        node_then, ours_then = self._anchor
        if our_ms - ours_then < _PACE_WINDOW_MS:
            return
        # Both ends truncated to whole seconds: a node in step moves within 1 s of us.
        self._in_step = abs((node_ms - node_then) - (our_ms - ours_then)) <= 1_000 + 500
        if not self._in_step:
            self._anchor = (node_ms, our_ms)

    @property
    def phase_ms(self) -> int | None:
        """Slot times are this modulo 3 s on our clock; None: no schedule to follow."""
        return self._phase_ms if self._in_step else None


class NamingLead:
    """How long after its slot time a provider has named the tx that block holds, learned
    from each order's first question (one per Coordinator, so per provider).

    It starts at the packing deadline, when the block is surely out. A first question that
    finds the tx named moves the next one 25 ms earlier; one that does not moves it 225 ms
    later (so about one first question in ten comes too early, and costs one more), within 0
    and `BLOCK_OUT_MS`. A provider that names its tx as the block appears is then asked about
    then, one that names it later is asked later: the schedule fits the provider, not a guess.
    """

    STEP_EARLIER_MS = 25
    STEP_LATER_MS = 225

    def __init__(self) -> None:
        self.lead_ms = BLOCK_OUT_MS

    def heard(self, named: bool) -> None:
        """What an order's first question, asked ``lead_ms`` after the slot, found."""
        if named:
            self.lead_ms = max(0, self.lead_ms - self.STEP_EARLIER_MS)
        else:
            self.lead_ms = min(BLOCK_OUT_MS, self.lead_ms + self.STEP_LATER_MS)
