"""Which energy on chain is this order's, and why: a pure function of the state.

A named delegation tx counts for the order only if every rule below holds; the energy of the
txs that count is summed (an order may be filled by several delegations). Each rule that fails
is a reason in the tx's finding, never a silent zero:

- *settled*: its body and its info agree it is in a block (a half-found tx is not found), and
  it is solid when the policy asks for that;
- *a delegation of ENERGY to the target* that succeeded on chain;
- *authentic* (:mod:`energy_async.authenticity`);
- *causal*: included in a block after the read just before ordering: stamped after the
  node's clock then (its ``Date``; ``NODE_CLOCK_MARGIN_MS``), or, when a head block was read
  instead, numbered after it (with neither, no more than ``CAUSALITY_MARGIN_MS``
  before the provider's own order time);
- *exclusive*: credited to no other order of ours (the ledger's owner is this order).

A rule that fails on chain facts disqualifies a tx only after ``accuse_after`` consistent reads;
until then the tx is *open* and the chain witness reads it again.

The delegator's record to the target caps what its counted txs delivered (a delegation
reclaimed before the rental ended). A cap is an accusation too: a record holding less than the
txs delegated keeps them *open* until ``accuse_after`` reads of it, each asked for after the
txs were read in a block, agree. A record read beside a tx may have been served just before
the tx's block (on a real node as in the sandbox), and one lagging node may serve an old one.

When the provider names no tx, the EnergyLimit delta may speak for the order, and only when no
other order of ours touched the address in the window (``others``).
"""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from dataclasses import dataclass

import msgspec

from energy_async.energy import energy_for_sun
from energy_async.models import (
    Basis,
    ConfirmStatus,
    DelegatedResource,
    DelegationTx,
    Term,
    TxFinding,
)
from energy_async.watch.policy import CAUSALITY_MARGIN_MS, NODE_CLOCK_MARGIN_MS, PollPolicy
from energy_async.watch.state import TxLook, WatchState

__all__ = [
    "Attribution",
    "TxStatus",
    "attribute",
    "before_the_order",
    "judge_tx",
    "provider_silent",
    "term_of",
]

_RECLAIMED = frozenset({ConfirmStatus.RECLAIM_CONFIRMED, ConfirmStatus.RECLAIM_CONFIRMED_FAIL})
_DEFAULT_LOCK_BLOCKS = 86_400  # lock=true with lock_period 0: 3 days (DelegateResourceActuator)
_BLOCK_MS = 3_000


class TxStatus(enum.StrEnum):
    COUNTS = "COUNTS"
    PENDING = "PENDING"  # not in a block (yet), or not found: time decides
    OPEN = "OPEN"  # unread, half-found, unpriced, or a failed rule awaiting another read
    DISQUALIFIED = "DISQUALIFIED"  # a rule failed on enough consistent reads


@dataclass(frozen=True, slots=True)
class Attribution:
    """Energy attributed to the order (None: nothing), on what basis, and per-tx findings."""

    energy: int | None
    basis: Basis
    findings: tuple[TxFinding, ...] = ()
    statuses: tuple[TxStatus, ...] = ()  # one per finding
    notes: tuple[str, ...] = ()
    term: Term | None = None

    @property
    def open(self) -> bool:
        """Some named tx cannot be judged yet: read it again before any accusation."""
        return TxStatus.OPEN in self.statuses

    @property
    def pending(self) -> bool:
        return TxStatus.PENDING in self.statuses

    @property
    def disqualified(self) -> bool:
        return TxStatus.DISQUALIFIED in self.statuses

    @property
    def all_count(self) -> bool:
        return bool(self.statuses) and all(s is TxStatus.COUNTS for s in self.statuses)


def judge_tx(state: WatchState, txid: str, policy: PollPolicy) -> tuple[TxStatus, list[str]]:
    """One named tx's status and the reasons for it (the rules above, in order)."""
    look = state.txs.get(txid)
    if look is None:
        return TxStatus.OPEN, ["not read yet"]
    tx = look.tx
    if tx.half_found:
        return TxStatus.OPEN, [
            f"half-found: its info shows block {tx.block_number} but the node served no body "
            "(one lagging node, or read just before its block); read again"
        ]
    if not tx.in_block:
        # java-tron serves a body only for a tx in a block, so "seen pending, then gone"
        # cannot be observed: a body without a block in the info is a lagging info read.
        if tx.found:
            reason = "its body was served, its info shows no block yet (a lagging node)"
        else:
            reason = "not found on chain"
        return TxStatus.PENDING, [reason]
    if policy.require_solid and not tx.solid:
        return TxStatus.PENDING, [f"in block {tx.block_number}, not solid yet"]
    problems = _problems(state, look)
    if problems:
        if look.consistent >= policy.accuse_after:
            return TxStatus.DISQUALIFIED, [*problems, f"on {look.consistent} consistent reads"]
        return TxStatus.OPEN, [*problems, "read again before judging"]
    if _prices(state, look) is None:
        return TxStatus.OPEN, ["no network totals read after its block to price it yet"]
    short = _short_record(state, look)
    if short is not None and look.record_reads < policy.accuse_after:
        return TxStatus.OPEN, [short, f"on {look.record_reads} read(s) after its block: read again"]
    return TxStatus.COUNTS, []


def _short_record(state: WatchState, look: TxLook) -> str | None:
    """Why the delegator's record, as last read, holds less than this order's txs from that
    delegator delegated; None when it does not (or was not read, or the rental has ended)."""
    record = look.record
    if record is None or (state.order is not None and state.order.confirm_status in _RECLAIMED):
        return None
    delegated = _delegated_by(state, look.tx.owner)
    if record.energy_sun >= delegated:
        return None
    return (
        f"the delegator's record to the target holds {record.energy_sun} sun, less than the "
        f"{delegated} its txs delegated"
    )


def _delegated_by(state: WatchState, delegator: str | None) -> int:
    """Sun delegated to the target by ``delegator`` in the txs credited to this order."""
    return sum(
        look.tx.balance_sun
        for look in state.txs.values()
        if look.settled and look.owner == state.key and look.tx.owner == delegator
    )


def _problems(state: WatchState, look: TxLook) -> list[str]:
    tx = look.tx
    if tx.failed or (tx.contract_ret is not None and tx.contract_ret != "SUCCESS"):
        return [f"failed on chain: {tx.fail_message or ''}".rstrip(": ")]
    if tx.contract_type != "DelegateResourceContract":
        return [f"a {tx.contract_type}, not a delegation"]
    problems = []
    if tx.receiver != state.target:
        problems.append(f"delegates to {tx.receiver}, not to the target")
    if tx.resource != "ENERGY":
        problems.append(f"delegates {tx.resource}, not ENERGY")
    if tx.authentic is False:
        problems.append(f"not authentic: {tx.authenticity}")
    causality = before_the_order(state, tx)
    if causality is not None:
        problems.append(causality)
    if look.owner is not None and look.owner != state.key:
        problems.append(f"already credited to our order {look.owner}")
    return problems


def before_the_order(state: WatchState, tx: DelegationTx) -> str | None:
    """Why ``tx`` was on chain before the order was placed, or None when it was not."""
    if state.head is not None and tx.block_number is not None:
        if tx.block_number <= state.head.number:
            return (
                f"included in block {tx.block_number}, before the order was placed "
                f"(the head was block {state.head.number})"
            )
        return None
    block_ms = tx.block_time_ms
    node_ms = state.before.node_time_ms if state.before is not None else None
    if node_ms is not None and block_ms is not None:
        if block_ms <= node_ms - NODE_CLOCK_MARGIN_MS:
            return (
                f"included at {_utc_s(block_ms)}, before the order was placed (the node's "
                f"clock read {_utc_s(node_ms)} just before ordering)"
            )
        return None
    created = state.order.created_at_ms if state.order is not None else None
    if created is not None and block_ms is not None and block_ms < created - CAUSALITY_MARGIN_MS:
        return f"included at {_utc(block_ms)}, before the provider's order time {_utc(created)}"
    return None


def _prices(state: WatchState, look: TxLook) -> tuple[int, int] | None:
    """TEL and TEW to price a tx at: the target's snapshot of the same look, else totals read
    after its block, else a later snapshot of the target."""
    snapshot = look.snapshot
    if snapshot is not None and snapshot.total_energy_weight:
        return snapshot.total_energy_limit, snapshot.total_energy_weight
    if look.totals is not None:
        return look.totals.total_energy_limit, look.totals.total_energy_weight
    snapshot = state.after
    if snapshot is not None and snapshot.total_energy_weight:
        return snapshot.total_energy_limit, snapshot.total_energy_weight
    return None


def attribute(
    state: WatchState,
    policy: PollPolicy,
    *,
    now: float,
    final: bool,
    others: tuple[str, ...] = (),
) -> Attribution:
    """The energy on chain that is this order's, with its basis and per-tx findings."""
    named = state.named
    if named:
        return _by_txs(state, named, policy)
    return _by_delta(state, policy, now=now, final=final, others=others)


def _by_txs(state: WatchState, named: tuple[str, ...], policy: PollPolicy) -> Attribution:
    findings: list[TxFinding] = []
    statuses: list[TxStatus] = []
    counted: dict[str, list[TxLook]] = defaultdict(list)  # by delegator
    notes: list[str] = []
    for txid in named:
        status, reasons = judge_tx(state, txid, policy)
        look = state.txs.get(txid)
        tx = look.tx if look is not None else None
        energy = 0
        if status is TxStatus.COUNTS and look is not None:
            prices = _prices(state, look)
            assert prices is not None and tx is not None
            energy = energy_for_sun(tx.balance_sun, *prices)
            counted[tx.owner or ""].append(look)
        findings.append(
            TxFinding(
                txid=txid,
                counted=status is TxStatus.COUNTS,
                energy=energy,
                sun=tx.balance_sun if tx is not None else 0,
                basis=Basis.TX if status is TxStatus.COUNTS else Basis.NONE,
                reasons=reasons,
                consistent_reads=look.consistent if look is not None else 0,
                tx=tx,
                term=term_of(look, state) if status is TxStatus.COUNTS and look else None,
            )
        )
        statuses.append(status)
        if status is not TxStatus.COUNTS:
            notes.append(f"delegation tx {txid}: {'; '.join(reasons)}")
    if not counted:
        return Attribution(None, Basis.NONE, tuple(findings), tuple(statuses), tuple(notes))
    total, capped = 0, False
    reclaimed = state.order is not None and state.order.confirm_status in _RECLAIMED
    for looks in counted.values():
        sun = sum(look.tx.balance_sun for look in looks)
        record = _latest_record(looks)
        if reclaimed:
            notes.append("the rental has ended and the provider reclaimed the stake, as agreed")
        elif record is not None and record.energy_sun < sun:
            notes.append(
                f"the delegator's record to the target holds {record.energy_sun} sun, less "
                f"than the {sun} its txs delegated: part was already reclaimed"
            )
            sun, capped = record.energy_sun, True
        prices = _prices(state, looks[-1])
        assert prices is not None
        total += energy_for_sun(sun, *prices)
    if capped:
        findings = [f if not f.counted else _with_basis(f, Basis.RECORD_CAPPED) for f in findings]
    basis = Basis.RECORD_CAPPED if capped else Basis.TX
    term = _order_term([f.term for f in findings if f.term is not None])
    return Attribution(
        total if total > 0 else None, basis, tuple(findings), tuple(statuses), tuple(notes), term
    )


def _with_basis(finding: TxFinding, basis: Basis) -> TxFinding:
    return msgspec.structs.replace(finding, basis=basis)


def _latest_record(looks: list[TxLook]) -> DelegatedResource | None:
    for look in reversed(looks):
        if look.record is not None:
            return look.record
    return None


def _by_delta(
    state: WatchState, policy: PollPolicy, *, now: float, final: bool, others: tuple[str, ...]
) -> Attribution:
    """No tx named: the EnergyLimit delta, when nothing else of ours can explain it."""
    before, after = state.before, state.after
    if before is None or after is None:
        return Attribution(None, Basis.NONE)
    delta = after.energy_limit - before.energy_limit
    if delta <= 0:
        return Attribution(None, Basis.NONE)
    if others:
        note = (
            "EnergyLimit rose, but other orders of ours touched this address in the window "
            f"({', '.join(sorted(others))}): the delta is nobody's proof"
        )
        return Attribution(None, Basis.NONE, notes=(note,))
    # Another process (or person) may be delegating to this address too: before the deadline
    # the delta speaks only for a silent provider.
    if not final and not provider_silent(state, policy, now):
        return Attribution(None, Basis.NONE)
    note = "attributed by the EnergyLimit delta only: no delegation tx was named"
    return Attribution(delta, Basis.DELTA, notes=(note,))


def provider_silent(state: WatchState, policy: PollPolicy, now: float) -> bool:
    """The provider never answered the create within the grace, or answered after it and
    still named no tx: only then may the EnergyLimit delta speak before the deadline (and the
    chain witness read the target for it). A working provider names its tx, and then the tx
    decides; a merely slow poll of ours is no such answer."""
    started = state.ordered_clock
    if started is None:
        return False
    if state.order is None:
        return now - started >= policy.confirm_grace
    quiet = state.quiet_clock
    return quiet is not None and quiet - started >= policy.confirm_grace


def term_of(look: TxLook, state: WatchState) -> Term:
    """How long one counted delegation is guaranteed."""
    tx = look.tx
    provider_ms = state.order.expires_at_ms if state.order is not None else None
    record_ms = look.record.energy_expires_at_ms if look.record is not None else None
    if not tx.lock:
        summary = "revocable at any time (an unlocked delegation)"
        if provider_ms:
            summary += f"; the provider says the rental ends {_utc(provider_ms)}"
        return Term(
            locked=False,
            record_expires_at_ms=record_ms,
            provider_expires_at_ms=provider_ms,
            summary=summary,
        )
    blocks = tx.lock_period or _DEFAULT_LOCK_BLOCKS
    until = tx.block_time_ms + blocks * _BLOCK_MS if tx.block_time_ms is not None else None
    until = record_ms or until
    summary = f"locked until {_utc(until)}" if until is not None else "locked"
    return Term(
        locked=True,
        lock_period_blocks=blocks,
        locked_until_ms=until,
        record_expires_at_ms=record_ms,
        provider_expires_at_ms=provider_ms,
        summary=summary,
    )


def _order_term(terms: list[Term]) -> Term | None:
    """The order's term is its weakest delegation's."""
    if not terms:
        return None
    unlocked = [term for term in terms if not term.locked]
    if unlocked:
        return unlocked[0]
    return min(terms, key=lambda term: term.locked_until_ms or 0)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _utc_s(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))
