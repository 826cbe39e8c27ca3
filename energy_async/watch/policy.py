"""How an order is watched: poll intervals, the grace a provider's claim gets, the call budget."""

from __future__ import annotations

from dataclasses import dataclass

from energy_async.errors import ConfigurationError

__all__ = ["CAUSALITY_MARGIN_MS", "NODE_CLOCK_MARGIN_MS", "PollPolicy"]

# The usual anchor is the node's own clock: the ``Date`` header (whole seconds, RFC 9110) of
# the target's read just before ordering, so causality costs no call of its own. A block's
# timestamp is its slot time, a whole second on mainnet (genesis 1529891469000, 3 s slots).
# A block stamped at or before the header's second was produced at or before the read (its
# second is truncated, so the read came at or after it): never this order's. A delegation made
# for this order is broadcast after that answer, so it lands in a later slot. This is as exact
# as the head-block read it replaces, one call cheaper. What it trusts, and the head read did
# not: the node's clock against the producers' slot times (NTP-kept on both sides; a node
# clock running ahead would make an honest delegation look older), and a producer not
# packing a tx that arrived after its slot began into that slot's block. No margin is taken:
# a margin would credit a stranger's rental from the block just before the order.
NODE_CLOCK_MARGIN_MS = 0

# When no head block was read before ordering (a resumed order, ``recheck``), causality falls
# back to the provider's own order time. Providers reject request timestamps more than 5 s off
# their clock (reference/providers.md), so their clock is within seconds of ours; 30 s covers
# that, the 3 s block slot and the node's clock, and still rejects any rental older than that.
CAUSALITY_MARGIN_MS = 30_000


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How the coordinator watches an order.

    Intervals grow from ``initial_interval`` by ``backoff`` up to ``max_interval`` (real
    seconds). ``confirm_grace`` is how long the chain gets to show what the provider claims
    (confirmed or failed) before "nothing on chain" becomes the answer. ``trongrid_budget``
    caps TronGrid calls per order. ``require_solid`` waits for the delegation to be solidified
    (about 18 blocks, ~1 minute on mainnet) instead of merely included in a block.
    ``accuse_after`` is how many consistent reads of the chain an accusation
    (PROVIDER_MISMATCH, or a tx that does not count) must rest on.
    """

    initial_interval: float = 1.0
    max_interval: float = 6.0
    backoff: float = 1.5
    confirm_grace: float = 20.0
    trongrid_budget: int = 60
    require_solid: bool = False
    accuse_after: int = 2

    def __post_init__(self) -> None:
        if self.initial_interval <= 0 or self.max_interval < self.initial_interval:
            raise ConfigurationError("PollPolicy intervals must be positive and ordered")
        if self.backoff < 1 or self.confirm_grace < 0 or self.trongrid_budget < 2:
            raise ConfigurationError(
                "PollPolicy needs backoff >= 1, confirm_grace >= 0, trongrid_budget >= 2"
            )
        if self.accuse_after < 1:
            raise ConfigurationError("PollPolicy.accuse_after must be at least 1")
