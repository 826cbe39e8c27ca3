"""How an order is watched: poll intervals, the grace a provider's claim gets, the call budget."""

from __future__ import annotations

from dataclasses import dataclass

from energy_async.errors import ConfigurationError

__all__ = ["CAUSALITY_MARGIN_MS", "NODE_CLOCK_MARGIN_MS", "PollPolicy"]

# The usual anchor is the node's own clock: the ``Date`` header (whole seconds, RFC 9110) of
# the target's read just before ordering, so causality costs no call of its own. A block's
# timestamp is its slot time, a whole second on mainnet (genesis 1529891469000, 3 s slots).
# But a block is not finished at its slot time: java-tron's producer wakes at the slot and
# packs pending transactions until slot time + 3000 / 2 x 50 % = 750 ms by default (DposTask's
# deadline with ``blockProducedTimeOut`` = 50; as ported in opentron's producer, whose notes
# say java-tron "can only use 750ms(default) to generate a block"), and the block keeps the
# slot time as its stamp. So a block stamped in the read's own second may
# still have been packing when the node answered, and a delegation broadcast right after the
# read can land in it: that block must count. A block stamped a whole second or more before
# the read's second was sealed before the read (750 ms of packing, plus 250 ms for the node's
# and the producers' NTP-kept clocks to differ): never this order's. This is the safe reading
# where the sources are silent on the exact packing deadline: a dishonest provider gains at
# most the block of the read's own second to pass off an older rental (which must still be
# to this target, unclaimed by any order of ours, and authentic), while an honest provider is
# never accused for a delegation packed late into a block stamped before it was sent.
NODE_CLOCK_MARGIN_MS = 1_000

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
