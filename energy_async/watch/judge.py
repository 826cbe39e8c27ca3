"""The verdict, from the state and its attribution: pure, with the table in ``verdict.py``.

It returns notes; it never writes them. Rules on top of the table:

- a refusal with nothing sent before it is REJECTED (nothing was bought);
- a named tx the chain was never read about (or read only half: a half-found tx, or a failed
  rule on fewer than ``accuse_after`` consistent reads) is not "nothing on chain": it waits for
  another read, and at the deadline the chain is UNREACHABLE (UNKNOWN), never a
  PROVIDER_MISMATCH;
- a named tx still pending holds a partial or empty finding until the grace or the deadline;
- a named tx that does not count, next to ones that do, makes the order UNDER_DELIVERED at
  best: its finding says why;
- a claim settles against an empty chain only on ``accuse_after`` consistent reads;
- a delegator's record holding less than its txs delegated caps them only on ``accuse_after``
  agreeing reads after their block (``attribution``); until then the txs are open.
"""

from __future__ import annotations

from dataclasses import dataclass

from energy_async.energy import delivery_tolerance
from energy_async.models import Basis, Verdict
from energy_async.verdict import ChainFinding, ProviderFinding, decide, provider_finding
from energy_async.watch.attribution import Attribution, TxStatus
from energy_async.watch.policy import PollPolicy
from energy_async.watch.state import WatchState

__all__ = ["Judgement", "chain_finding", "judge"]


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict | None
    provider: ProviderFinding
    chain: ChainFinding
    notes: tuple[str, ...] = ()


def chain_finding(state: WatchState, attribution: Attribution, *, final: bool) -> ChainFinding:
    """What the chain shows for this order (UNREACHABLE: nothing can be concluded)."""
    if not state.chain_answered:
        return ChainFinding.UNREACHABLE
    energy = attribution.energy or 0
    expected = state.request.expected_energy
    full = energy >= expected - delivery_tolerance(expected)
    if energy > 0 and full and (not state.named or attribution.all_count):
        return ChainFinding.FULL
    if state.named and attribution.open and final:
        return ChainFinding.UNREACHABLE  # never read consistently: nothing is proven
    if energy <= 0:
        return ChainFinding.NOTHING
    return ChainFinding.PART


def judge(
    state: WatchState, attribution: Attribution, policy: PollPolicy, *, now: float, final: bool
) -> Judgement:
    """The verdict now, or None while it is not settled."""
    provider = provider_finding(state.phase)
    if state.refused is not None:
        note = f"the provider refused the order ({state.refused}); nothing was charged"
        return Judgement(Verdict.REJECTED, provider, ChainFinding.NOTHING, (note,))
    chain = chain_finding(state, attribution, final=final)
    if chain is ChainFinding.FULL:
        return Judgement(Verdict.DELIVERED, provider, chain, _delivered_notes(state, provider))
    if state.named and not final:
        if attribution.open:
            return Judgement(None, provider, chain)  # read again before any accusation
        conclusive = bool(attribution.statuses) and all(
            status is TxStatus.DISQUALIFIED for status in attribution.statuses
        )
        if attribution.pending and not (conclusive or _grace_over(state, attribution, policy, now)):
            return Judgement(None, provider, chain)
    grace_over = _grace_over(state, attribution, policy, now) or (
        bool(state.named)
        and bool(attribution.statuses)
        and all(status is TxStatus.DISQUALIFIED for status in attribution.statuses)
    )
    verdict = decide(provider, chain, final=final, grace_over=grace_over)
    notes: list[str] = []
    capped = attribution.basis is Basis.RECORD_CAPPED
    if verdict is Verdict.PROVIDER_MISMATCH and not capped:
        reads = [f.consistent_reads for f in attribution.findings if not f.counted]
        notes.append(
            f"the accusation rests on {min(reads, default=0)} consistent read(s) of each "
            "named tx that does not count"
        )
    if capped and verdict is not None:
        reads = [look.record_reads for look in state.txs.values() if look.owner == state.key]
        notes.append(
            f"the cap rests on {min(reads, default=0)} agreeing read(s) of the delegator's "
            "record, each after the delegation's block"
        )
    if verdict is Verdict.UNKNOWN and state.unsettled:
        notes.append(
            "a create may have been taken and none settled: the order may have been charged; "
            f"resolve it by client_order_id {state.key}"
        )
    return Judgement(verdict, provider, chain, tuple(notes))


def _grace_over(
    state: WatchState, attribution: Attribution, policy: PollPolicy, now: float
) -> bool:
    """The provider claimed a final state long enough ago, and the chain was read about it
    consistently enough, for "nothing on chain" to be an answer rather than a delay."""
    if state.claimed_clock is None or now - state.claimed_clock < policy.confirm_grace:
        return False
    if attribution.open:
        return False
    for finding, status in zip(attribution.findings, attribution.statuses, strict=True):
        if status is TxStatus.PENDING and finding.consistent_reads < policy.accuse_after:
            return False
    return True


def _delivered_notes(state: WatchState, provider: ProviderFinding) -> tuple[str, ...]:
    if provider is ProviderFinding.PENDING and state.order is not None:
        return (
            "on chain before the provider confirmed it (provider status "
            f"{state.order.status}/{state.order.confirm_status})",
        )
    if provider is ProviderFinding.FAILED:
        return ("contradiction: the provider reports failure, the chain shows delivery",)
    return ()
