"""The referee: owns the task group, applies the witnesses' events, asks the judge.

The first verdict cancels both witnesses. Before anything is sent the referee takes the
pre-order look (the target's energy, dated by the node's clock: the causality anchor), retrying
throttling within the order's deadline; if the chain cannot be read, nothing is bought
(:class:`~energy_async.errors.NothingBought`).
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from typing import TYPE_CHECKING, cast

import anyio
from yarl import URL

from energy_async._http import CallMeter
from energy_async.energy import delivery_tolerance
from energy_async.errors import EnergyError, InputError, NodeError, NothingBought, RateLimited
from energy_async.ledger import OrderLedger
from energy_async.models import (
    Basis,
    ChainHead,
    DeliveryResult,
    Evidence,
    Order,
    OrderRequest,
    ResourceSnapshot,
    Verdict,
)
from energy_async.watch.attribution import Attribution, attribute
from energy_async.watch.events import (
    ChainFailed,
    CreateRefused,
    CreateUnsettled,
    Event,
    OrderSeen,
    SnapshotRead,
    TxRead,
)
from energy_async.watch.judge import Judgement, judge
from energy_async.watch.policy import PollPolicy
from energy_async.watch.state import WatchState
from energy_async.watch.witnesses import (
    ChainWitness,
    Delegators,
    OrderHooks,
    Phase,
    PhaseHook,
    ProviderWitness,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from energy_async.session import ProviderSession
    from energy_async.slots import NamingLead
    from energy_async.verifier import Verifier

__all__ = ["Referee"]

log = logging.getLogger("energy_async.coordinator")

_LAST_LOOK = 1.0  # seconds for one bounded look after the deadline (evidence, or the delta)
# Events that can change the verdict; the others (a create leaving, a failed poll) cannot.
_DECISIVE = (OrderSeen, CreateRefused, SnapshotRead, TxRead, ChainFailed)


class Referee:
    """Watches one order to its verdict. Use once: ``await Referee(...).run(...)``."""

    def __init__(
        self,
        request: OrderRequest,
        *,
        session: ProviderSession,
        verifier: Verifier,
        policy: PollPolicy,
        ledger: OrderLedger,
        hooks: OrderHooks | None = None,
        resumed: bool = False,
        delegators: Delegators | None = None,
        naming: NamingLead | None = None,
    ) -> None:
        self.session = session
        self.verifier = verifier
        self.policy = policy
        self.ledger = ledger
        self.hooks = hooks
        self.state = WatchState(request=request, resumed=resumed)
        self.fatal: EnergyError | None = None
        self.provider_meter = CallMeter()
        self.chain_meter = CallMeter()
        self.provider = ProviderWitness(
            session, policy, self.provider_meter, hooks, slots=verifier.slots, naming=naming
        )
        self.chain = ChainWitness(
            verifier, policy, self.chain_meter, ledger, delegators, hooks=hooks
        )
        self.judgement: Judgement | None = None
        self.attribution = Attribution(None, Basis.NONE)
        self.notes: list[str] = []
        self.started_at = time.time()
        self._scope: anyio.CancelScope | None = None
        # Optional on a hooks object: implementers from before phases need not have it.
        reports = callable(getattr(hooks, "on_phase", None))
        self._phase_hook = cast(PhaseHook, hooks) if reports else None

    # --- what the witnesses call ------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Apply one event and judge; the first verdict stops the witnesses."""
        before = self.state
        self.state = state = before.apply(event)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("order %s: %s", state.key, _describe(event))
        if state.named != before.named:
            self.chain.named_clock = time.monotonic()
            self.chain.named.set()
        if self._phase_hook is not None:
            self._report_phases(before, state)
        if isinstance(event, _DECISIVE):
            self._judge(final=self.budget_spent())

    def fail(self, error: EnergyError) -> None:
        self.fatal = error
        if self._scope is not None:
            self._scope.cancel()

    def budget_spent(self) -> bool:
        return self.chain_meter.calls >= self.policy.trongrid_budget

    # --- the run ------------------------------------------------------------------------------

    async def run(self, ends_at: float, *, resume_order: Order | None = None) -> DeliveryResult:
        state = self.state
        window = self.ledger.open(state.key, state.target)
        result: DeliveryResult | None = None
        try:
            if not state.resumed:
                await self._pre_order_look(ends_at)
                self._time_left_to_watch(ends_at)
            if resume_order is not None:
                self.observe(OrderSeen(resume_order, anyio.current_time(), time.time()))
            elif self.hooks is not None:
                await self.hooks.on_sending(state.key)
            await self._watch(ends_at)
            if self.fatal is not None:
                raise self.fatal
            result = self._result()
            return result
        finally:
            # Nothing sent, or its delegation proven: the order stops touching its target.
            from energy_async.ledger import lingers

            self.ledger.close(window, lingers=result is not None and lingers(result))

    async def _pre_order_look(self, ends_at: float) -> None:
        """The target's energy and the causality anchor, read before ordering; throttling
        is retried within the deadline, and a chain that cannot be read buys nothing."""
        interval = self.policy.initial_interval
        last: EnergyError | None = None
        with anyio.move_on_after(max(ends_at - anyio.current_time(), 0.0)):
            while True:
                try:
                    snapshot, head = await self._snapshot_and_head()
                except EnergyError as error:
                    if isinstance(error, InputError):
                        raise
                    last = error
                    if not _throttled(error):
                        break  # down, not busy: the verifier's own retries were the chance
                    log.debug("order %s: pre-order read throttled (%s)", self.state.key, error)
                    await anyio.sleep(interval)
                    interval = min(interval * self.policy.backoff, self.policy.max_interval)
                    continue
                self.observe(SnapshotRead(snapshot, anyio.current_time(), head=head, before=True))
                return
        host = URL(self.verifier.base_url).host
        cause = f" (last: {type(last).__name__}: {last.message})" if last is not None else ""
        raise NothingBought(
            f"TronGrid at {host} could not be read before ordering{cause}; nothing was bought, "
            "safe to retry",
            service="trongrid",
            host=host,
        ) from last

    def _time_left_to_watch(self, ends_at: float) -> None:
        """An order sent with less than one poll interval left could only end UNKNOWN, for
        the user to resolve by hand: when the read before ordering took (nearly) the whole
        deadline, send nothing, and say so (safe to retry, as any `NothingBought`)."""
        left = ends_at - anyio.current_time()
        if left >= self.policy.initial_interval:
            return
        host = URL(self.verifier.base_url).host
        raise NothingBought(
            f"the read of the target before ordering left {max(left, 0.0):.2f} s of the "
            f"deadline, too little to watch an order (TronGrid at {host} is slow); nothing "
            "was bought, safe to retry, with a longer deadline",
            service="trongrid",
            host=host,
        )

    async def _snapshot_and_head(self) -> tuple[ResourceSnapshot, ChainHead | None]:
        """One look: the target, dated by the node's clock (the causality anchor, see
        ``NODE_CLOCK_MARGIN_MS``). Only a node that sends no ``Date`` costs a head read."""
        snapshot = await self.verifier.snapshot(self.state.target, meter=self.chain_meter)
        if snapshot.node_time_ms is not None:
            return snapshot, None
        return snapshot, await self.verifier.head(meter=self.chain_meter)

    async def _watch(self, ends_at: float) -> None:
        """Both witnesses side by side until the verdict settles or the deadline comes."""
        with anyio.move_on_after(max(ends_at - anyio.current_time(), 0.0)):
            async with anyio.create_task_group() as group:
                self._scope = group.cancel_scope
                if self.judgement is None:  # a resumed order may be judged on arrival
                    group.start_soon(self.provider.run, self)
                    group.start_soon(self.chain.run, self)
        self._scope = None
        if self.fatal is not None:
            return
        state = self.state
        if self.judgement is None:
            await self._last_looks(state)
            self._judge(final=True)
            self.notes.append("settled at the deadline")
        elif self.budget_spent():
            self.notes.append("settled when the TronGrid call budget ran out")
        state = self.state
        proven = self.attribution.basis in (Basis.TX, Basis.RECORD_CAPPED) and (
            self.judgement is not None and self.judgement.verdict is Verdict.DELIVERED
        )
        wanted = state.refused is None and state.chain_answered and not proven
        if state.after is None and wanted and not self.budget_spent():
            # Evidence only (energy after); the verdict stands whatever this returns.
            with anyio.move_on_after(_LAST_LOOK), suppress(EnergyError):
                snapshot = await self.verifier.snapshot(state.target, meter=self.chain_meter)
                self.state = self.state.apply(SnapshotRead(snapshot, anyio.current_time()))

    async def _last_looks(self, state: WatchState) -> None:
        """At the deadline, one briefly bounded look at what could still change the verdict,
        side by side: the verdict is then taken on the freshest evidence, never on a read that
        the deadline cut off.

        - No tx named: the EnergyLimit is all there is to judge by.
        - A named tx not settled in a block (unread, half-found or pending): the chain once
          more, and, since the provider is asked only at its slowest pace once it names a tx,
          the provider too (its claim decides between NOT_DELIVERED and PROVIDER_MISMATCH).
        """
        looks: list[Callable[[Referee], Coroutine[None, None, None]]] = []
        chain_open = not self.budget_spent()
        if not state.named:
            if state.chain_answered and chain_open:
                looks.append(self.chain.snapshot)
        elif any(txid not in state.txs or not state.txs[txid].settled for txid in state.named):
            if chain_open:
                looks.append(self.chain.look)
            if not self.provider.done(state):
                looks.append(self.provider.poll)
        if not looks:
            return
        with anyio.move_on_after(_LAST_LOOK):
            try:
                async with anyio.create_task_group() as group:
                    for look in looks:
                        group.start_soon(look, self)
            except* EnergyError:
                pass  # the look failed: the verdict rests on what is known

    def _report_phases(self, before: WatchState, after: WatchState) -> None:
        hook = self._phase_hook
        assert hook is not None
        key = after.key
        if before.order is None and after.order is not None:
            hook.on_phase(key, Phase.ORDERED, after.order.id)
        if after.named and after.named != before.named:
            hook.on_phase(key, Phase.TX_NAMED, ", ".join(after.named))
        if before.included_at is None and after.included_at is not None:
            blocks = sorted(
                look.tx.block_number
                for look in after.txs.values()
                if look.settled and look.tx.block_number is not None
            )
            hook.on_phase(key, Phase.IN_BLOCK, ", ".join(str(number) for number in blocks))

    def _judge(self, *, final: bool) -> None:
        if self.judgement is not None and self.judgement.verdict is not None:
            # Settled already: a look that finished before the cancel reached it must not
            # undo the verdict.
            return
        state = self.state
        now = anyio.current_time()
        others: tuple[str, ...] = ()
        if not state.named and state.before is not None and state.after is not None:
            others = tuple(
                self.ledger.others_touched(state.key, state.target, self.started_at, time.time())
            )
        attribution = attribute(state, self.policy, now=now, final=final, others=others)
        judgement = judge(state, attribution, self.policy, now=now, final=final)
        self.attribution = attribution
        if judgement.verdict is None:
            return
        self.judgement = judgement
        if self._scope is not None:
            self._scope.cancel()

    # --- reporting ----------------------------------------------------------------------------

    def _result(self) -> DeliveryResult:
        state = self.state
        judgement = self.judgement
        verdict = judgement.verdict if judgement is not None else None
        verdict = verdict or Verdict.UNKNOWN
        attribution = self.attribution
        before, after = state.before, state.after
        expected = state.request.expected_energy
        evidence = Evidence(started_at=self.started_at, ordered_at=state.ordered_at)
        evidence.energy_before = before.energy_limit if before else None
        evidence.energy_after = after.energy_limit if after else None
        if before is not None and after is not None:
            evidence.energy_delta = after.energy_limit - before.energy_limit
        evidence.expected_energy = expected
        evidence.tolerance = delivery_tolerance(expected)
        evidence.attributed_energy = attribution.energy
        evidence.basis = attribution.basis if attribution.energy else Basis.NONE
        evidence.delegations = list(attribution.findings)
        evidence.term = attribution.term
        evidence.head_before = state.head
        evidence.node_time_before_ms = before.node_time_ms if before else None
        looks = [state.txs[txid] for txid in state.named if txid in state.txs]
        priced = [look.totals for look in looks if look.totals is not None]
        snapshot = after or before
        if priced and after is None:
            evidence.total_energy_limit = priced[-1].total_energy_limit
            evidence.total_energy_weight = priced[-1].total_energy_weight
        elif snapshot is not None:
            evidence.total_energy_limit = snapshot.total_energy_limit
            evidence.total_energy_weight = snapshot.total_energy_weight
        evidence.delegation = looks[0].tx if looks else None
        records = [look.record for look in looks if look.record is not None]
        evidence.delegated_resource = records[0] if records else None
        evidence.status_history = list(state.history)
        evidence.provider_calls = self.provider_meter.calls
        evidence.trongrid_calls = self.chain_meter.calls
        evidence.included_at = state.included_at
        evidence.settled_at = time.time()
        notes = list(state.facts)
        notes.extend(attribution.notes)
        if judgement is not None:
            notes.extend(judgement.notes)
        notes.extend(self.notes)
        if state.order is None and state.refused is None:
            notes.append("the provider never answered the create with an order")
        if attribution.term is not None and verdict is Verdict.DELIVERED:
            notes.append(f"term: {attribution.term.summary}")
        error = state.refused or state.error
        if verdict is Verdict.UNKNOWN and error is None:
            error = (
                f"no answer from {self.session.provider.name} or the chain before the "
                f"deadline; resolve it later by client_order_id {state.key}"
            )
        _cross_check(evidence, verdict, notes)
        evidence.notes = list(dict.fromkeys(notes))
        if self._phase_hook is not None:
            self._phase_hook.on_phase(state.key, Phase.VERIFIED, str(verdict))
        log.info(
            "order %s: %s (attributed %s of %s energy, basis %s)",
            state.key,
            verdict,
            attribution.energy,
            expected,
            evidence.basis,
        )
        return DeliveryResult(
            verdict=verdict,
            provider=self.session.provider.name,
            client_order_id=state.key,
            request=state.request,
            order=state.order,
            evidence=evidence,
            error=error if verdict in (Verdict.REJECTED, Verdict.UNKNOWN) else None,
            error_kind=state.refused_kind if verdict is Verdict.REJECTED else None,
        )


def _throttled(error: EnergyError) -> bool:
    """Throttling or a busy node: worth waiting for within the deadline."""
    return isinstance(error, RateLimited) or (isinstance(error, NodeError) and error.retryable)


def _cross_check(evidence: Evidence, verdict: Verdict, notes: list[str]) -> None:
    """The EnergyLimit delta never decides a verdict the tx proved; it is reported."""
    if verdict is not Verdict.DELIVERED or evidence.energy_delta is None:
        return
    attributed = evidence.attributed_energy or 0
    tolerance = evidence.tolerance or 0
    if evidence.energy_delta < attributed - tolerance:
        notes.append(
            f"EnergyLimit rose by {evidence.energy_delta}, less than the {attributed} "
            "attributed: other delegations to this address changed in the window "
            "(the delegation tx and the delegated-resource record prove this order)"
        )
    elif evidence.energy_delta > attributed + tolerance and evidence.delegation is not None:
        notes.append(
            f"EnergyLimit rose by {evidence.energy_delta}, more than this order's "
            f"{attributed}: other delegations arrived in the window"
        )


def _describe(event: Event) -> str:
    """One short line per step for the DEBUG log."""
    match event:
        case OrderSeen(order=order):
            hashes = ",".join(order.delegate_hashes) or "-"
            return f"provider: {order.status}/{order.confirm_status} txs={hashes}"
        case CreateRefused(message=message, maybe_sent=maybe_sent):
            return f"provider refused the create (maybe sent before: {maybe_sent}): {message}"
        case CreateUnsettled(kind=kind):
            return f"create unsettled: {kind}"
        case SnapshotRead(snapshot=snapshot, head=head, before=before):
            where = f" head={head.number}" if head is not None else ""
            return f"chain: EnergyLimit {snapshot.energy_limit}{where} (before={before})"
        case TxRead(tx=tx, owner=owner):
            return (
                f"chain: tx {tx.txid} found={tx.found} in_block={tx.in_block} "
                f"block={tx.block_number} authentic={tx.authentic} owner={owner}"
            )
        case ChainFailed(kinds=kinds):
            return f"chain read failed: {', '.join(kinds)}"
    return type(event).__name__
