"""What is known about one order: a frozen value, changed only by ``apply(event)``.

Clocks: ``*_clock`` fields are the anyio clock (monotonic seconds: graces, deadlines);
``*_at`` fields are the wall clock (Unix seconds: evidence); chain times are ``*_ms``.
"""

from __future__ import annotations

import msgspec

from energy_async.energy import EnergyTotals
from energy_async.models import (
    ChainHead,
    DelegatedResource,
    DelegationTx,
    Order,
    OrderPhase,
    OrderRequest,
    ResourceSnapshot,
    StatusChange,
)
from energy_async.watch.events import (
    ChainFailed,
    CreateRefused,
    CreateSent,
    CreateUnsettled,
    Event,
    OrderSeen,
    PollFailed,
    SnapshotRead,
    TxRead,
)

__all__ = ["TxLook", "WatchState"]

_replace = msgspec.structs.replace


class TxLook(msgspec.Struct, frozen=True, kw_only=True):
    """The latest read of one named tx, and how many reads in a row agreed with it."""

    tx: DelegationTx
    record: DelegatedResource | None = None
    snapshot: ResourceSnapshot | None = None
    totals: EnergyTotals | None = None
    owner: str | None = None
    consistent: int = 1  # reads in a row with the same facts (0 after a half-found read)
    # Reads of ``record`` in a row, each asked for after the tx was read in a block, that
    # agree on its sun (0: the record was read beside the tx, perhaps before its block).
    record_reads: int = 0

    @property
    def settled(self) -> bool:
        """Body and info agree the tx is in a block: its facts can be judged."""
        return self.tx.in_block and not self.tx.half_found


def _facts(tx: DelegationTx) -> tuple[object, ...]:
    return (
        tx.found,
        tx.in_block,
        tx.block_number,
        tx.contract_type,
        tx.receiver,
        tx.resource,
        tx.balance_sun,
        tx.failed,
        tx.authentic,
    )


class WatchState(msgspec.Struct, frozen=True, kw_only=True):
    """One order under watch: ``WatchState(request=...)``, then ``apply``; never mutated.

    ``txs`` is replaced, never changed in place, by ``apply``.
    """

    request: OrderRequest
    order: Order | None = None
    history: tuple[StatusChange, ...] = ()
    before: ResourceSnapshot | None = None
    head: ChainHead | None = None  # the head block read before ordering
    after: ResourceSnapshot | None = None
    txs: dict[str, TxLook] = {}
    chain_answered: bool = False
    ordered_clock: float | None = None
    ordered_at: float | None = None
    claimed_clock: float | None = None  # the provider first said confirmed or failed
    quiet_clock: float | None = None  # the provider's latest answer that named no tx
    refused: str | None = None  # refused with nothing sent before: nothing was bought
    refused_kind: str | None = None  # the refusal's error class, for callers that act on it
    unsettled: bool = False  # a create may have been taken; replay, never call it refused
    replay_refused: str | None = None  # a refusal after an attempt that may have been taken
    duplicate: bool = False  # the provider says an order exists for this client_order_id
    error: str | None = None
    facts: tuple[str, ...] = ()  # what the witnesses saw that is worth a note
    included_at: float | None = None
    resumed: bool = False
    named: tuple[str, ...] = ()  # every tx the provider names for the order (lower-case hex)

    @property
    def target(self) -> str:
        return self.request.target

    @property
    def key(self) -> str:
        return self.request.client_order_id

    @property
    def phase(self) -> OrderPhase | None:
        return self.order.phase if self.order is not None else None

    def apply(self, event: Event) -> WatchState:
        """The state after ``event``."""
        replace = _replace
        match event:
            case CreateSent(clock=clock, at=at):
                if self.ordered_clock is not None:
                    return self
                return replace(self, ordered_clock=clock, ordered_at=at)
            case OrderSeen():
                return self._saw(event)
            case CreateRefused(
                message=message, maybe_sent=maybe_sent, duplicate=duplicate, kind=kind
            ):
                if maybe_sent or duplicate or self.unsettled:
                    note = (
                        f"an order exists for this client_order_id ({message})"
                        if duplicate
                        else f"the replay was refused ({message}): the first create may stand"
                    )
                    return replace(
                        self,
                        unsettled=True,
                        replay_refused=message,
                        duplicate=self.duplicate or duplicate,
                        error=message,
                        facts=_add(self.facts, note),
                    )
                return replace(self, refused=message, refused_kind=kind, error=message)
            case CreateUnsettled(kind=kind, message=message):
                note = f"create did not settle ({kind}); reconciling by replay"
                return replace(self, unsettled=True, error=message, facts=_add(self.facts, note))
            case PollFailed(kind=kind):
                return replace(self, facts=_add(self.facts, f"provider poll failed: {kind}"))
            case SnapshotRead(snapshot=snapshot, head=head, before=before):
                if before:
                    return replace(self, before=snapshot, head=head, chain_answered=True)
                return replace(self, after=snapshot, chain_answered=True)
            case TxRead():
                return self._read(event)
            case ChainFailed(kinds=kinds):
                note = f"TronGrid poll failed: {', '.join(kinds)}"
                return replace(self, facts=_add(self.facts, note))
        raise TypeError(f"not an event: {event!r}")  # pragma: no cover

    def _saw(self, event: OrderSeen) -> WatchState:
        order = event.order
        history = self.history
        change = StatusChange(
            at=event.at,
            status=str(order.raw.get("status", order.status)),
            confirm_status=str(order.raw.get("confirm_status", order.confirm_status)),
            delegate_hash=order.delegate_hash,
        )
        last = history[-1] if history else None
        if last is None or (last.status, last.confirm_status, last.delegate_hash) != (
            change.status,
            change.confirm_status,
            change.delegate_hash,
        ):
            history = (*history, change)
        claimed = self.claimed_clock
        if claimed is None and order.phase in (OrderPhase.CONFIRMED, OrderPhase.FAILED):
            claimed = event.clock
        facts = self.facts
        if event.replayed and self.unsettled and self.order is None:
            facts = _add(facts, "reconciled by replaying the create with the same client_order_id")
        named = self.named
        if order.delegate_hashes != (self.order.delegate_hashes if self.order else ()):
            named = tuple(txid.lower() for txid in order.delegate_hashes)
        return _replace(
            self,
            order=order,
            named=named,
            history=history,
            claimed_clock=claimed,
            quiet_clock=self.quiet_clock if order.delegate_hashes else event.clock,
            unsettled=False,
            replay_refused=None,
            error=None,
            facts=facts,
        )

    def _read(self, event: TxRead) -> WatchState:
        tx = event.tx
        previous = self.txs.get(tx.txid)
        consistent = 0 if tx.half_found else 1
        snapshot, totals = event.snapshot, event.totals
        if previous is not None:
            if not event.reread:
                consistent = previous.consistent
                if snapshot is None and totals is None:  # a refresh of the record only
                    snapshot, totals = previous.snapshot, previous.totals
            elif consistent and _facts(previous.tx) == _facts(tx):
                consistent = previous.consistent + 1
        record, record_reads = _record_reads(previous, event)
        look = TxLook(
            tx=tx,
            record=record,
            snapshot=snapshot,
            totals=totals,
            owner=event.owner,
            consistent=consistent,
            record_reads=record_reads,
        )
        txs = dict(self.txs)
        txs[tx.txid] = look
        after = event.snapshot if event.snapshot is not None else self.after
        included = self.included_at
        if included is None and tx.in_block and not tx.half_found:
            included = event.at
        return _replace(
            self,
            txs=txs,
            after=after,
            chain_answered=True,
            included_at=included,
        )


def _record_reads(previous: TxLook | None, event: TxRead) -> tuple[DelegatedResource | None, int]:
    """The record to keep and how many reads after the block agree on it. A look that read
    no record keeps the last one."""
    record = event.record
    if record is None:
        return (previous.record, previous.record_reads) if previous is not None else (None, 0)
    if not event.record_after_block:
        return record, 0
    if (
        previous is not None
        and previous.record is not None
        and previous.record_reads
        and previous.record.energy_sun == record.energy_sun
    ):
        return record, previous.record_reads + 1
    return record, 1


def _add(notes: tuple[str, ...], note: str) -> tuple[str, ...]:
    return notes if note in notes else (*notes, note)
