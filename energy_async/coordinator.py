"""From an order request to a delivery verdict users can trust.

The provider's word is one witness; the chain is the other. The coordinator places the order,
then polls both (bounded, backed off, under a deadline and a budget of TronGrid calls) and
settles by the table in ``verdict.py``. Energy is attributed to *this* order through its own
delegation transaction and the delegator's delegated-resource record, because the raw
EnergyLimit delta lies whenever anything else touches the address in the window.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from energy_async._http import CallMeter
from energy_async.energy import delivery_tolerance, energy_for_sun
from energy_async.errors import (
    AuthenticationError,
    ConfigurationError,
    EnergyError,
    InputError,
    ProviderError,
)
from energy_async.models import (
    ConfirmStatus,
    DelegatedResource,
    DelegationTx,
    DeliveryResult,
    Evidence,
    Order,
    OrderPhase,
    OrderRequest,
    ResourceSnapshot,
    StatusChange,
    Verdict,
)
from energy_async.verdict import ChainFinding, ProviderFinding, decide, provider_finding

if TYPE_CHECKING:
    from decimal import Decimal

    from energy_async.batch import BatchRun, SpendGuard
    from energy_async.journal import Journal
    from energy_async.readiness import TransferPurchase
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

__all__ = ["Coordinator", "PollPolicy"]

log = logging.getLogger("energy_async.coordinator")

_RECLAIMED = frozenset({ConfirmStatus.RECLAIM_CONFIRMED, ConfirmStatus.RECLAIM_CONFIRMED_FAIL})

# Our orders in flight per target, for every Coordinator in this process: a raw EnergyLimit
# delta cannot be attributed to one of them while another is in flight to the same address.
_IN_FLIGHT: Counter[str] = Counter()


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """How the coordinator watches an order.

    Intervals grow from ``initial_interval`` by ``backoff`` up to ``max_interval`` (real
    seconds). ``confirm_grace`` is how long the chain gets to show what the provider claims
    (confirmed or failed) before "nothing on chain" becomes the answer. ``trongrid_budget``
    caps TronGrid calls per order. ``require_solid`` waits for the delegation to be solidified
    (about 18 blocks, ~1 minute on mainnet) instead of merely included in a block.
    """

    initial_interval: float = 1.0
    max_interval: float = 6.0
    backoff: float = 1.5
    confirm_grace: float = 20.0
    trongrid_budget: int = 60
    require_solid: bool = False

    def __post_init__(self) -> None:
        if self.initial_interval <= 0 or self.max_interval < self.initial_interval:
            raise ConfigurationError("PollPolicy intervals must be positive and ordered")
        if self.backoff < 1 or self.confirm_grace < 0 or self.trongrid_budget < 2:
            raise ConfigurationError(
                "PollPolicy needs backoff >= 1, confirm_grace >= 0, trongrid_budget >= 2"
            )


@dataclass(slots=True)
class _Watch:
    """What is known about one order while it is being watched."""

    request: OrderRequest
    target: str
    expected: int
    evidence: Evidence
    provider_meter: CallMeter = field(default_factory=CallMeter)
    chain_meter: CallMeter = field(default_factory=CallMeter)
    order: Order | None = None
    before: ResourceSnapshot | None = None
    after: ResourceSnapshot | None = None
    tx: DelegationTx | None = None
    record: DelegatedResource | None = None
    chain_answered: bool = False
    ordered_clock: float | None = None  # anyio clock at the first create attempt
    silent_after_grace: bool = False  # the provider answered after the grace, naming no tx
    claimed_at: float | None = None  # when the provider first said confirmed or failed
    refused: bool = False  # the provider refused the create: nothing was bought
    create_unsettled: bool = False  # a create was sent whose outcome is not known yet
    fatal: EnergyError | None = None  # wrong credentials or input: not a verdict, re-raised
    error: str | None = None
    error_kind: str | None = None  # the refusal's error class, for callers that act on it
    notes: list[str] = field(default_factory=list)
    tx_named: anyio.Event = field(default_factory=anyio.Event)  # wakes the chain loop

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


class Coordinator:
    """Buys through a :class:`ProviderSession` and verifies through a :class:`Verifier`."""

    def __init__(
        self,
        session: ProviderSession,
        verifier: Verifier,
        *,
        poll: PollPolicy | None = None,
    ) -> None:
        self.session = session
        self.verifier = verifier
        self.poll = poll or PollPolicy()

    @property
    def provider(self) -> str:
        return self.session.provider.name

    async def buy(
        self,
        *,
        target: str,
        energy: int | None = None,
        transfers: int | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
        deadline: float = 120.0,
    ) -> DeliveryResult:
        """Buy one order and return its verdict with the evidence.

        Bad input raises an :class:`InputError` before anything is sent. A failure to read
        the target before ordering raises too (nothing is bought that could not be verified).
        Everything after the order is sent ends in a ``DeliveryResult``, never an exception.
        """
        request = self.session.prepare(
            target=target,
            energy=energy,
            transfers=transfers,
            duration=duration,
            client_order_id=client_order_id,
        )
        return await self.settle(request, deadline=deadline)

    async def settle(
        self,
        request: OrderRequest,
        *,
        deadline: float = 120.0,
        journal: Journal | None = None,
        resume_order: Order | None = None,
        resumed: bool = False,
    ) -> DeliveryResult:
        """Take a prepared request to a verdict (the batch runner and resume use this)."""
        if deadline <= 0:
            raise ConfigurationError("deadline must be positive (seconds)")
        watch = _Watch(
            request=request,
            target=request.target,
            expected=request.expected_energy,
            evidence=Evidence(started_at=time.time()),
        )
        ends_at = anyio.current_time() + deadline
        _IN_FLIGHT[watch.target] += 1
        try:
            if resumed:
                watch.note("resumed from the journal: no pre-order snapshot of this run")
            else:
                watch.before = await self.verifier.snapshot(watch.target, meter=watch.chain_meter)
                watch.chain_answered = True
            if resume_order is not None:
                self._saw(watch, resume_order)
            elif journal is not None:
                await journal.mark_sent(request.client_order_id)
            verdict = await self._watch(watch, ends_at, journal)
            if watch.fatal is not None:
                raise watch.fatal
            return self._result(watch, verdict)
        finally:
            _IN_FLIGHT[watch.target] -= 1
            if not _IN_FLIGHT[watch.target]:
                del _IN_FLIGHT[watch.target]

    def buy_many(
        self,
        requests: Iterable[OrderRequest],
        *,
        concurrency: int = 16,
        deadline: float = 120.0,
        journal: Journal | None = None,
        spend_guard: SpendGuard | None = None,
    ) -> AbstractAsyncContextManager[BatchRun]:
        """Run many orders at once; results stream out as they settle.

        ``async with coordinator.buy_many(requests, concurrency=32) as results:``
        ``    async for result in results: ...``
        See :mod:`energy_async.batch`.
        """
        from energy_async.batch import run_batch

        return run_batch(
            self,
            requests,
            concurrency=concurrency,
            deadline=deadline,
            journal=journal,
            spend_guard=spend_guard,
        )

    def resume(
        self,
        journal: Journal,
        *,
        concurrency: int = 16,
        deadline: float = 120.0,
        spend_guard: SpendGuard | None = None,
    ) -> AbstractAsyncContextManager[BatchRun]:
        """Finish a batch from its journal: settled orders are never bought again, orders never
        sent are sent, the rest are re-attached by ``client_order_id`` (replay, then query)."""
        from energy_async.batch import run_resume

        return run_resume(
            self, journal, concurrency=concurrency, deadline=deadline, spend_guard=spend_guard
        )

    # --- placing ---------------------------------------------------------------------------

    async def _send_create(self, watch: _Watch) -> None:
        """Send the create, or replay it: the same ``client_order_id`` makes a replay return
        the earlier order, so this step can be repeated until it settles and never buys twice.
        """
        if watch.evidence.ordered_at is None:
            watch.evidence.ordered_at = time.time()
            watch.ordered_clock = anyio.current_time()
        try:
            order = await self.session.place(watch.request, meter=watch.provider_meter)
        except (AuthenticationError, InputError) as exc:
            watch.fatal = exc  # wrong for every order: a configuration problem, not a verdict
            return
        except ProviderError as exc:
            watch.error = str(exc)
            if watch.create_unsettled:
                # An earlier attempt may have gone through; the chain gets the grace period.
                watch.note(f"the replay was refused: {exc.message}")
                watch.claimed_at = watch.claimed_at or anyio.current_time()
            else:
                watch.refused = True
                watch.error_kind = type(exc).__name__
                watch.note("the provider refused the order; nothing was charged")
            return
        except EnergyError as exc:
            # Unknown outcome, throttling that outlasted the session's retries, a garbled
            # answer: replaying the same client_order_id settles it, so keep going.
            watch.error = str(exc)
            watch.create_unsettled = True
            watch.note(f"create did not settle ({type(exc).__name__}); reconciling by replay")
            return
        if watch.create_unsettled:
            watch.note("reconciled by replaying the create with the same client_order_id")
        watch.error = None
        self._saw(watch, order)

    # --- watching ----------------------------------------------------------------------------

    async def _watch(self, watch: _Watch, ends_at: float, journal: Journal | None) -> Verdict:
        """Watch the provider and the chain side by side until the verdict settles.

        Two loops, so a slow witness never blinds the other: a create being replayed through
        the session's retries must not keep the chain from being read, and the other way
        round. Every step of either is followed by a decision.
        """
        verdict: Verdict | None = None

        def decide_now(scope: anyio.CancelScope) -> None:
            nonlocal verdict
            if verdict is not None:
                # Settled already: the other loop's look that finished before the cancel
                # reached it must not undo the verdict (a hash named late hides the delta).
                return
            out_of_budget = self._budget_spent(watch)
            verdict = self._decide(watch, final=out_of_budget, now=anyio.current_time())
            if verdict is not None:
                if out_of_budget:
                    watch.note("settled when the TronGrid call budget ran out")
                scope.cancel()

        with anyio.move_on_after(max(ends_at - anyio.current_time(), 0.0)):
            async with anyio.create_task_group() as group:
                group.start_soon(self._provider_loop, watch, journal, decide_now, group)
                group.start_soon(self._chain_loop, watch, decide_now, group)
        if verdict is None:
            named = watch.order is not None and watch.order.delegate_hash
            if not named and watch.chain_answered and not self._budget_spent(watch):
                # No tx was named: at the deadline the EnergyLimit is all there is to judge
                # by, so take one last, briefly bounded look at it.
                with anyio.move_on_after(1.0), suppress(EnergyError):
                    await self._snapshot_after(watch)
            # Once final, the table always answers; UNKNOWN only guards the type.
            verdict = self._decide(watch, final=True, now=anyio.current_time()) or Verdict.UNKNOWN
            watch.note("settled at the deadline")
        wanted = not (watch.refused or watch.fatal) and watch.chain_answered
        if watch.after is None and wanted and not self._budget_spent(watch):
            # Evidence only (energy after); the verdict stands whatever this returns.
            with anyio.move_on_after(1.0), suppress(EnergyError):
                await self._snapshot_after(watch)
        return verdict

    async def _provider_loop(
        self,
        watch: _Watch,
        journal: Journal | None,
        decide_now: Callable[[anyio.CancelScope], None],
        group: anyio.abc.TaskGroup,
    ) -> None:
        interval = self.poll.initial_interval
        while not self._provider_done(watch):
            await self._poll_provider(watch, journal)
            if watch.fatal is not None:
                group.cancel_scope.cancel()
                return
            decide_now(group.cancel_scope)
            await anyio.sleep(interval)
            interval = min(interval * self.poll.backoff, self.poll.max_interval)

    async def _chain_loop(
        self,
        watch: _Watch,
        decide_now: Callable[[anyio.CancelScope], None],
        group: anyio.abc.TaskGroup,
    ) -> None:
        interval = self.poll.initial_interval
        while True:
            # Wait out the backoff, unless the provider names a tx: then look at once.
            # (The target was read just before the create, so waiting first costs nothing.)
            with anyio.move_on_after(interval):
                await watch.tx_named.wait()
            if watch.tx_named.is_set():
                watch.tx_named = anyio.Event()
                interval = self.poll.initial_interval
            else:
                interval = min(interval * self.poll.backoff, self.poll.max_interval)
            await self._poll_chain(watch)
            decide_now(group.cancel_scope)
            if self._budget_spent(watch):
                return

    def _provider_done(self, watch: _Watch) -> bool:
        """The provider has said all it will say (or refused the replay): stop asking."""
        order = watch.order
        if order is None:
            return watch.refused or watch.claimed_at is not None
        return order.phase in (OrderPhase.CONFIRMED, OrderPhase.FAILED) and bool(
            order.delegate_hash
        )

    def _budget_spent(self, watch: _Watch) -> bool:
        return watch.chain_meter.calls >= self.poll.trongrid_budget

    async def _poll_provider(self, watch: _Watch, journal: Journal | None) -> None:
        order = watch.order
        if order is None:
            await self._send_create(watch)
            if watch.order is not None and journal is not None:
                await journal.record_order(watch.request.client_order_id, watch.order)
            return
        try:
            fresh = await self.session.get_order(order.id, meter=watch.provider_meter)
        except EnergyError as exc:
            watch.note(f"provider poll failed: {type(exc).__name__}")
            return
        self._saw(watch, fresh)
        if journal is not None and fresh.status != order.status:
            await journal.record_order(watch.request.client_order_id, fresh)

    def _saw(self, watch: _Watch, order: Order) -> None:
        previous = watch.evidence.status_history[-1] if watch.evidence.status_history else None
        change = StatusChange(
            at=time.time(),
            status=str(order.raw.get("status", order.status)),
            confirm_status=str(order.raw.get("confirm_status", order.confirm_status)),
            delegate_hash=order.delegate_hash,
        )
        if previous is None or (
            previous.status,
            previous.confirm_status,
            previous.delegate_hash,
        ) != (change.status, change.confirm_status, change.delegate_hash):
            watch.evidence.status_history.append(change)
        if not order.delegate_hash and watch.ordered_clock is not None:
            waited = anyio.current_time() - watch.ordered_clock
            watch.silent_after_grace |= waited >= self.poll.confirm_grace
        named_now = order.delegate_hash and (
            watch.order is None or watch.order.delegate_hash != order.delegate_hash
        )
        watch.order = order
        if named_now:
            watch.tx_named.set()
        if watch.claimed_at is None and order.phase in (OrderPhase.CONFIRMED, OrderPhase.FAILED):
            watch.claimed_at = anyio.current_time()

    async def _poll_chain(self, watch: _Watch) -> None:
        """One look at the chain, spending only the calls this stage needs.

        What a look learns is published together (tx, record and snapshot, with no await in
        between), so a decision taken by the provider loop meanwhile never mixes a new tx
        with a snapshot from before it landed.
        """
        if self._budget_spent(watch):
            return
        meter = watch.chain_meter
        delegate_hash = watch.order.delegate_hash if watch.order else None
        try:
            if not delegate_hash:
                if watch.order is not None and not watch.silent_after_grace:
                    return  # the provider is about to name its tx: nothing to read yet
                # The provider is silent: the EnergyLimit is all there is to watch.
                await self._snapshot_after(watch)
                return
            tx = watch.tx
            if tx is None or not self._tx_settled(tx):
                seen_before = tx is not None and tx.found
                tx = await self.verifier.delegation(delegate_hash, meter=meter)
                watch.chain_answered = True
                if seen_before and not tx.found:
                    watch.note(
                        "the delegation tx was seen pending, then vanished: it expired "
                        "without landing (or a lagging node answered)"
                    )
            counts = self._tx_settled(tx) and self._tx_counts(watch, tx) and bool(tx.owner)
            if counts and not self._budget_spent(watch):
                record, after = await self._record_and_snapshot(watch, tx.owner or "")
                watch.record, watch.after = record, after
            watch.tx = tx
            if tx.in_block and watch.evidence.included_at is None:
                watch.evidence.included_at = time.time()
        except* EnergyError as group:
            names = sorted({type(exc).__name__ for exc in group.exceptions})
            watch.note(f"TronGrid poll failed: {', '.join(names)}")

    async def _record_and_snapshot(
        self, watch: _Watch, owner: str
    ) -> tuple[DelegatedResource | None, ResourceSnapshot | None]:
        """The delegator's record and the target's energy, read at the same time."""
        record: DelegatedResource | None = None
        after: ResourceSnapshot | None = None
        meter = watch.chain_meter

        async def read_record() -> None:
            nonlocal record
            record = await self.verifier.delegated_resource(owner, watch.target, meter=meter)

        async def read_after() -> None:
            nonlocal after
            after = await self.verifier.snapshot(watch.target, meter=meter)

        async with anyio.create_task_group() as group:
            group.start_soon(read_record)
            group.start_soon(read_after)
        return record, after

    async def _snapshot_after(self, watch: _Watch) -> None:
        watch.after = await self.verifier.snapshot(watch.target, meter=watch.chain_meter)
        watch.chain_answered = True

    def _tx_settled(self, tx: DelegationTx | None) -> bool:
        if tx is None or not tx.in_block:
            return False
        return tx.solid or not self.poll.require_solid

    def _tx_counts(self, watch: _Watch, tx: DelegationTx) -> bool:
        """Whether this tx delivers energy to the target at all (and if not, say why)."""
        if tx.failed or (tx.contract_ret is not None and tx.contract_ret != "SUCCESS"):
            watch.note(f"delegation tx {tx.txid} failed on chain: {tx.fail_message or ''}")
            return False
        if tx.contract_type != "DelegateResourceContract":
            watch.note(f"delegate_hash {tx.txid} is a {tx.contract_type}, not a delegation")
            return False
        if tx.receiver != watch.target:
            watch.note(f"delegation tx {tx.txid} delegates to {tx.receiver}, not to the target")
            return False
        if tx.resource != "ENERGY":
            watch.note(f"delegation tx {tx.txid} delegates {tx.resource}, not ENERGY")
            return False
        return True

    # --- deciding ----------------------------------------------------------------------------

    def _named_tx_delivers_nothing(self, watch: _Watch) -> bool:
        """The provider's own tx is in a block and is not a delivery to the target: conclusive."""
        tx = watch.tx
        return tx is not None and self._tx_settled(tx) and not self._tx_counts(watch, tx)

    def _decide(self, watch: _Watch, *, final: bool, now: float) -> Verdict | None:
        if watch.refused:
            return Verdict.REJECTED  # refused at create: nothing bought, nothing to watch
        chain = self._chain_finding(watch, final=final, now=now)
        provider = provider_finding(watch.order.phase if watch.order else None)
        if watch.order is None and watch.claimed_at is not None:
            provider = ProviderFinding.FAILED  # the replay was refused: nothing was bought
        # "Nothing on chain" answers a claim only once the chain was asked about the tx the
        # provider named: a look still in flight (slow or throttled TronGrid) proves nothing.
        named = watch.order.delegate_hash if watch.order is not None else None
        named_unread = bool(named) and watch.tx is None
        grace_over = (
            watch.claimed_at is not None
            and now - watch.claimed_at >= self.poll.confirm_grace
            and not named_unread
        ) or self._named_tx_delivers_nothing(watch)
        verdict = decide(provider, chain, final=final, grace_over=grace_over)
        if verdict is Verdict.DELIVERED:
            if provider is ProviderFinding.PENDING and watch.order is not None:
                watch.note(
                    "on chain before the provider confirmed it (provider status "
                    f"{watch.order.status}/{watch.order.confirm_status})"
                )
            elif provider is ProviderFinding.FAILED:
                watch.note("contradiction: the provider reports failure, the chain shows delivery")
        return verdict

    def _chain_finding(self, watch: _Watch, *, final: bool, now: float) -> ChainFinding:
        if not watch.chain_answered:
            return ChainFinding.UNREACHABLE
        if watch.order is not None and watch.order.delegate_hash and watch.tx is None:
            # The provider named its tx and the chain was never read about it: that is not
            # "nothing on chain", and it must never accuse the provider.
            return ChainFinding.UNREACHABLE
        attributed = self._attributed_energy(watch, final=final, now=now)
        watch.evidence.attributed_energy = attributed
        tolerance = delivery_tolerance(watch.expected)
        if attributed is None or attributed <= 0:
            return ChainFinding.NOTHING
        if attributed >= watch.expected - tolerance:
            return ChainFinding.FULL
        return ChainFinding.PART

    def _attributed_energy(self, watch: _Watch, *, final: bool, now: float) -> int | None:
        """Energy on chain that belongs to this order, or ``None`` when nothing does (yet)."""
        after = watch.after
        tx = watch.tx
        if tx is not None and tx.found and self._tx_settled(tx) and self._tx_counts(watch, tx):
            if after is None or not after.total_energy_weight:
                return None  # the totals to price it come from a snapshot
            sun = tx.balance_sun
            rental_over = watch.order is not None and watch.order.confirm_status in _RECLAIMED
            if rental_over:
                watch.note("the rental has ended and the provider reclaimed the stake, as agreed")
            elif watch.record is not None and watch.record.energy_sun < sun:
                watch.note(
                    f"the delegator's record to the target holds {watch.record.energy_sun} sun, "
                    f"less than the tx's {tx.balance_sun}: part was already reclaimed"
                )
                sun = watch.record.energy_sun
            return energy_for_sun(sun, after.total_energy_limit, after.total_energy_weight)
        if watch.order is not None and watch.order.delegate_hash:
            return None  # the provider named its tx: only that tx counts
        # No delegation tx to go by (provider unreachable or silent): the raw delta is all
        # there is, and only when no other order of ours is in flight to this address.
        if watch.before is None or after is None:
            return None
        delta = after.energy_limit - watch.before.energy_limit
        if delta <= 0:
            return None
        if _IN_FLIGHT[watch.target] > 1:
            watch.note("EnergyLimit rose, but another order to this address is in flight")
            return None
        # Another process (or person) may be delegating to this address too. A working
        # provider names its tx, and then the tx decides; the delta speaks only for a provider
        # that never answered within the grace period, or that answered after it and still
        # named no tx (or at the deadline). A merely slow poll of ours is not such an answer.
        if not final:
            if watch.order is None:
                started = watch.ordered_clock if watch.ordered_clock is not None else now
                if now - started < self.poll.confirm_grace:
                    return None
            elif not watch.silent_after_grace:
                return None
        watch.note("attributed by the EnergyLimit delta only: no delegation tx was named")
        return delta

    # --- reporting ---------------------------------------------------------------------------

    def _result(self, watch: _Watch, verdict: Verdict) -> DeliveryResult:
        evidence = watch.evidence
        before, after = watch.before, watch.after
        evidence.energy_before = before.energy_limit if before else None
        evidence.energy_after = after.energy_limit if after else None
        if before is not None and after is not None:
            evidence.energy_delta = after.energy_limit - before.energy_limit
        evidence.expected_energy = watch.expected
        evidence.tolerance = delivery_tolerance(watch.expected)
        snapshot = after or before
        if snapshot is not None:
            evidence.total_energy_limit = snapshot.total_energy_limit
            evidence.total_energy_weight = snapshot.total_energy_weight
        evidence.delegation = watch.tx
        evidence.delegated_resource = watch.record
        evidence.provider_calls = watch.provider_meter.calls
        evidence.trongrid_calls = watch.chain_meter.calls
        evidence.settled_at = time.time()
        if watch.order is None and not watch.refused:
            watch.note("the provider never answered the create with an order")
        if verdict is Verdict.UNKNOWN and watch.error is None:
            watch.error = (
                f"no answer from {self.provider} or the chain before the deadline; resolve it "
                f"later by client_order_id {watch.request.client_order_id}"
            )
        self._cross_check(watch, verdict)
        evidence.notes = watch.notes
        return DeliveryResult(
            verdict=verdict,
            provider=self.provider,
            client_order_id=watch.request.client_order_id,
            request=watch.request,
            order=watch.order,
            evidence=evidence,
            error=watch.error if verdict in (Verdict.REJECTED, Verdict.UNKNOWN) else None,
            error_kind=watch.error_kind if verdict is Verdict.REJECTED else None,
        )

    def _cross_check(self, watch: _Watch, verdict: Verdict) -> None:
        """The EnergyLimit delta never decides a verdict the tx proved; it is reported."""
        evidence = watch.evidence
        if verdict is not Verdict.DELIVERED or evidence.energy_delta is None:
            return
        attributed = evidence.attributed_energy or 0
        tolerance = evidence.tolerance or 0
        if evidence.energy_delta < attributed - tolerance:
            watch.note(
                f"EnergyLimit rose by {evidence.energy_delta}, less than the {attributed} "
                "attributed: other delegations to this address changed in the window "
                "(the delegation tx and the delegated-resource record prove this order)"
            )
        elif evidence.energy_delta > attributed + tolerance and watch.tx is not None:
            watch.note(
                f"EnergyLimit rose by {evidence.energy_delta}, more than this order's "
                f"{attributed}: other delegations arrived in the window"
            )

    async def buy_for_transfer(
        self,
        *,
        sender: str,
        receiver: str,
        amount: str | Decimal | int,
        token: str | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
        deadline: float = 120.0,
    ) -> TransferPurchase:
        """Buy exactly the energy ``sender`` lacks to send ``amount`` (token units, USDT by
        default) to ``receiver``, verify it like `buy`, and re-read readiness (readiness.py)."""
        from energy_async.readiness import USDT, buy_for_transfer

        return await buy_for_transfer(
            self,
            sender=sender,
            receiver=receiver,
            amount=amount,
            token=token or USDT,
            duration=duration,
            client_order_id=client_order_id,
            deadline=deadline,
        )
