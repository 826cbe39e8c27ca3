"""When the chain's next block is out, on our own clock: the provider is asked then, not before.

A delegation broadcast as the provider takes an order can be in a block no sooner than the
first slot after the create was sent, and that block is finished by slot time + 750 ms
(java-tron's producer packs for at most half of half a slot: see ``watch/policy.py``). Asking
the provider before then can only hear "not yet"; asking much later only delays the verdict.
So the first poll is placed there, and later ones (at the policy's growing intervals) on the
next block out after each interval, never earlier than the policy's pace.

Slot times are ``genesis + k x 3 s``. Mainnet's genesis (1529891469000) is a multiple of 3 s,
so the phase starts at 0; every block timestamp read corrects it. The schedule needs the
node's clock to run with ours (NTP on both sides, as TRON's producers keep it), which is
learned from the node's ``Date`` headers: until two of them, at least ``_PACE_WINDOW_MS``
apart on our clock, agree with ours (a sandbox frozen or sped up never does), or when one
stops agreeing, there is no schedule and the policy's intervals alone apply.
"""

from __future__ import annotations

import math

__all__ = ["BLOCK_MS", "BLOCK_OUT_MS", "SlotClock", "first_poll_delay", "next_poll_delay"]

BLOCK_MS = 3_000  # BLOCK_PRODUCED_INTERVAL
BLOCK_OUT_MS = 750  # after its slot time a block is finished (the packing deadline)
MAINNET_GENESIS_MS = 1_529_891_469_000

_PACE_WINDOW_MS = 3_000  # node clock samples this far apart tell its pace from ours
# A Date header is whole seconds, truncated (RFC 9110), and arrives a round trip late: a node
# clock in step with ours reads up to a second and a round trip behind it.
_AGREEMENT_MS = 2_000


def first_poll_delay(now_ms: float, sent_ms: float, phase_ms: int) -> float:
    """Seconds from ``now_ms`` until the first block after ``sent_ms`` is out (0 if it is)."""
    slot_after = _first_at_or_after(sent_ms + 1, phase_ms)
    return max(0.0, (slot_after + BLOCK_OUT_MS - now_ms) / 1000)


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
