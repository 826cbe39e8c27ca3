"""Observations: one immutable event per look at the provider or at the chain.

Everything one look learned travels in one event (a tx, the delegator's record and the target's
snapshot read together), so what is published together is applied together by construction.
Times: ``clock`` is the anyio clock (monotonic seconds, for graces and deadlines), ``at`` is
the wall clock (Unix seconds, for the evidence).
"""

from __future__ import annotations

from dataclasses import dataclass

from energy_async.energy import EnergyTotals
from energy_async.models import (
    ChainHead,
    DelegatedResource,
    DelegationTx,
    Order,
    ResourceSnapshot,
)

__all__ = [
    "ChainFailed",
    "CreateRefused",
    "CreateSent",
    "CreateUnsettled",
    "Event",
    "OrderSeen",
    "PollFailed",
    "SnapshotRead",
    "TxRead",
]


@dataclass(frozen=True, slots=True)
class CreateSent:
    """The first create attempt is about to leave."""

    clock: float
    at: float


@dataclass(frozen=True, slots=True)
class OrderSeen:
    """The provider answered with the order (a create, a replay or a poll)."""

    order: Order
    clock: float
    at: float
    replayed: bool = False  # a create answered after an earlier one did not settle


@dataclass(frozen=True, slots=True)
class CreateRefused:
    """The provider said no to a create.

    ``maybe_sent``: an earlier attempt may have been taken, so this proves nothing was bought
    only when false. ``duplicate``: the refusal says an order exists for this id already.
    """

    message: str
    clock: float
    maybe_sent: bool
    duplicate: bool = False
    kind: str | None = None  # the refusal's error class (InsufficientBalance, ...)


@dataclass(frozen=True, slots=True)
class CreateUnsettled:
    """A create whose outcome is unknown (lost answer, throttling, a garbled body)."""

    kind: str
    message: str
    clock: float


@dataclass(frozen=True, slots=True)
class PollFailed:
    kind: str
    clock: float


@dataclass(frozen=True, slots=True)
class SnapshotRead:
    """The target's energy (and, before ordering, the head block) from one look."""

    snapshot: ResourceSnapshot
    clock: float
    head: ChainHead | None = None
    before: bool = False


@dataclass(frozen=True, slots=True)
class TxRead:
    """One look at one named tx, with what was read alongside it.

    ``owner``: the order our ledger credits the tx to (this order's own id, another's, or
    None when it was not claimed: the tx does not count on this read). ``totals``: the
    network totals that price it, read after its block (the target's ``snapshot`` is read
    only when no such totals were at hand). ``record_after_block``: the delegator's record
    was asked for only once this tx had been read in a block, so it can show the tx (a
    record read beside the tx may have been served before its block).
    """

    tx: DelegationTx
    clock: float
    at: float
    record: DelegatedResource | None = None
    snapshot: ResourceSnapshot | None = None
    owner: str | None = None
    reread: bool = True  # False: the tx was not read again, only its record and price
    totals: EnergyTotals | None = None
    record_after_block: bool = False


@dataclass(frozen=True, slots=True)
class ChainFailed:
    kinds: tuple[str, ...]
    clock: float


Event = (
    CreateSent
    | OrderSeen
    | CreateRefused
    | CreateUnsettled
    | PollFailed
    | SnapshotRead
    | TxRead
    | ChainFailed
)
