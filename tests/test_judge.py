"""The judge and the attribution rules, as table tests on the pure functions (no I/O).

Each case builds a state from events, as the witnesses would publish them, and checks the
verdict (or that there is none yet), the basis and the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import pytest

from energy_async.energy import EnergyTotals, energy_for_sun
from energy_async.models import (
    Basis,
    ChainHead,
    DelegatedResource,
    DelegationTx,
    Order,
    OrderRequest,
    OrderStatus,
    ResourceSnapshot,
    Verdict,
)
from energy_async.watch.attribution import attribute, provider_silent
from energy_async.watch.events import (
    CreateRefused,
    CreateSent,
    Event,
    OrderSeen,
    SnapshotRead,
    TxRead,
)
from energy_async.watch.judge import judge
from energy_async.watch.policy import CAUSALITY_MARGIN_MS, NODE_CLOCK_MARGIN_MS, PollPolicy
from energy_async.watch.state import WatchState

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
OWNER = "TJAVcszse667FmSNCwU2fm6DmfM5D4AyDh"
ELSEWHERE = "TQ4gjjpAjLNnE67UFbmK5wVt5fzLfyEVs3"
TEL, TEW = 180_000_000_000, 18_971_780_957
SUN = 6_851_000_000  # 65,000 energy at these totals (tron.md's worked example)
HALF_SUN = SUN // 2
ENERGY = 65_000
KEY = "me"
A, B = "a" * 64, "b" * 64
HEAD = ChainHead(number=100, timestamp_ms=1_700_000_000_000, taken_at=0.0)
POLICY = PollPolicy(confirm_grace=10.0)
REQUEST = OrderRequest(target=TARGET, energy=ENERGY, client_order_id=KEY)


def snapshot(energy: int = 0, node_time_ms: int | None = None) -> ResourceSnapshot:
    return ResourceSnapshot(
        address=TARGET,
        exists=True,
        energy_limit=energy,
        total_energy_limit=TEL,
        total_energy_weight=TEW,
        node_time_ms=node_time_ms,
    )


def tx(txid: str = A, **changes: object) -> DelegationTx:
    base = DelegationTx(
        txid=txid,
        found=True,
        contract_type="DelegateResourceContract",
        owner=OWNER,
        receiver=TARGET,
        resource="ENERGY",
        balance_sun=SUN,
        contract_ret="SUCCESS",
        in_block=True,
        block_number=101,
        block_time_ms=HEAD.timestamp_ms + 3_000,
        authentic=True,
    )
    return msgspec.structs.replace(base, **changes)


def order(*hashes: str, confirm: str = "DELEGATION_CONFIRMED", **changes: object) -> Order:
    fields: dict[str, object] = {
        "provider": "catfee",
        "id": "o-1",
        "client_order_id": KEY,
        "target": TARGET,
        "energy": ENERGY,
        "status": OrderStatus.DELEGATE_SUCCESS,
        "confirm_status": confirm,
        "delegate_hashes": hashes,
    }
    fields.update(changes)
    return Order(**fields)  # type: ignore[arg-type]


def seen(o: Order, clock: float = 1.0) -> OrderSeen:
    return OrderSeen(o, clock=clock, at=clock)


def read(
    t: DelegationTx,
    *,
    owner: str | None = KEY,
    clock: float = 2.0,
    record: DelegatedResource | None = None,
    after_block: bool = True,
    reread: bool = True,
) -> TxRead:
    """One look at ``t``; its ``record`` asked for after the tx's block unless not
    ``after_block`` (read beside the tx: perhaps served before its block)."""
    return TxRead(
        t,
        clock=clock,
        at=clock,
        record=record,
        snapshot=snapshot(ENERGY),
        owner=owner if t.in_block and not t.half_found else None,
        reread=reread,
        record_after_block=after_block,
    )


def holding(sun: int) -> DelegatedResource:
    """The delegator's record to the target, holding ``sun``."""
    return DelegatedResource(
        from_address=OWNER, to_address=TARGET, energy_sun=sun, records=1 if sun else 0
    )


START: list[Event] = [
    SnapshotRead(snapshot(0), clock=0.0, head=HEAD, before=True),
    CreateSent(clock=0.5, at=0.5),
]
# The usual anchor: no head read, the node's clock (its Date header) at the read before ordering.
NODE_MS = HEAD.timestamp_ms + 1_000
DATED: list[Event] = [
    SnapshotRead(snapshot(0, node_time_ms=NODE_MS), clock=0.0, before=True),
    CreateSent(clock=0.5, at=0.5),
]


def priced(t: DelegationTx, weight: int = TEW, *, clock: float = 2.0) -> TxRead:
    """A read whose look read no snapshot: priced by totals read after the tx's block."""
    totals = EnergyTotals(total_energy_limit=TEL, total_energy_weight=weight, node_time_ms=0)
    return TxRead(t, clock=clock, at=clock, owner=KEY, totals=totals)


@dataclass
class Case:
    name: str
    events: list[Event]
    expect: Verdict | None
    final: bool = False
    now: float = 3.0
    basis: Basis | None = None
    reason: str | None = None  # a substring of some finding's reasons or a note
    others: tuple[str, ...] = ()
    energy: int | None = None
    policy: PollPolicy = field(default_factory=lambda: POLICY)


CASES = [
    # --- one named tx ---------------------------------------------------------------------
    Case(
        "tx named, read, counts",
        [*START, seen(order(A)), read(tx())],
        Verdict.DELIVERED,
        basis=Basis.TX,
        energy=ENERGY,
    ),
    Case(
        "tx named, chain never read about it, deadline: UNKNOWN, never PROVIDER_MISMATCH",
        [*START, seen(order(A))],
        Verdict.UNKNOWN,
        final=True,
        now=100.0,
        reason="not read yet",
    ),
    Case(
        "tx named, never read, grace over: still waiting for a read",
        [*START, seen(order(A))],
        None,
        now=100.0,
    ),
    Case(
        "body served, info shows no block (a lagging info read): pending, no verdict",
        [*START, seen(order(A)), read(tx(in_block=False, block_number=None, block_time_ms=None))],
        None,
        reason="its info shows no block yet",
    ),
    Case(
        "half-found once: read again, no verdict",
        [*START, seen(order(A)), read(tx(contract_type=None, found=True))],
        None,
        now=100.0,
        reason="half-found",
    ),
    Case(
        "half-found at the deadline: UNKNOWN",
        [*START, seen(order(A)), read(tx(contract_type=None))],
        Verdict.UNKNOWN,
        final=True,
        reason="half-found",
    ),
    Case(
        "half-found, then whole: counts",
        [*START, seen(order(A)), read(tx(contract_type=None)), read(tx())],
        Verdict.DELIVERED,
    ),
    Case(
        "wrong receiver on one read: read again before accusing",
        [*START, seen(order(A)), read(tx(receiver=ELSEWHERE))],
        None,
        reason="read again before judging",
    ),
    Case(
        "wrong receiver on two consistent reads: PROVIDER_MISMATCH",
        [*START, seen(order(A)), read(tx(receiver=ELSEWHERE)), read(tx(receiver=ELSEWHERE))],
        Verdict.PROVIDER_MISMATCH,
        reason="not to the target",
    ),
    Case(
        "wrong receiver, then right: one inconsistent read accuses nobody",
        [*START, seen(order(A)), read(tx(receiver=ELSEWHERE)), read(tx())],
        Verdict.DELIVERED,
    ),
    Case(
        "BANDWIDTH, not ENERGY",
        [*START, seen(order(A)), read(tx(resource="BANDWIDTH")), read(tx(resource="BANDWIDTH"))],
        Verdict.PROVIDER_MISMATCH,
        reason="not ENERGY",
    ),
    Case(
        "failed on chain",
        [
            *START,
            seen(order(A)),
            read(tx(failed=True, fail_message="x")),
            read(tx(failed=True, fail_message="x")),
        ],
        Verdict.PROVIDER_MISMATCH,
        reason="failed",
    ),
    Case(
        "included before the order (causality)",
        [*START, seen(order(A)), read(tx(block_number=99)), read(tx(block_number=99))],
        Verdict.PROVIDER_MISMATCH,
        reason="before the order was placed",
    ),
    Case(
        "in the very head block read before ordering: still before",
        [*START, seen(order(A)), read(tx(block_number=100)), read(tx(block_number=100))],
        Verdict.PROVIDER_MISMATCH,
        reason="head was block 100",
    ),
    Case(
        "credited to another order of ours (exclusivity)",
        [*START, seen(order(A)), read(tx(), owner="other"), read(tx(), owner="other")],
        Verdict.PROVIDER_MISMATCH,
        reason="already credited to our order other",
    ),
    Case(
        "not authentic",
        [
            *START,
            seen(order(A)),
            read(tx(authentic=False, authenticity="forged")),
            read(tx(authentic=False, authenticity="forged")),
        ],
        Verdict.PROVIDER_MISMATCH,
        reason="not authentic: forged",
    ),
    Case(
        "authenticity not checkable (Permission_id): counts, not an accusation",
        [*START, seen(order(A)), read(tx(authentic=None, authenticity="Permission_id 2"))],
        Verdict.DELIVERED,
    ),
    Case(
        "confirmed, tx not found once, grace over: one more read first",
        [*START, seen(order(A)), read(tx(found=False, in_block=False, block_number=None))],
        None,
        now=20.0,
    ),
    Case(
        "confirmed, tx not found on two reads, grace over: PROVIDER_MISMATCH",
        [
            *START,
            seen(order(A)),
            read(tx(found=False, in_block=False, block_number=None)),
            read(tx(found=False, in_block=False, block_number=None)),
        ],
        Verdict.PROVIDER_MISMATCH,
        now=20.0,
        reason="consistent read",
    ),
    Case(
        "confirmed, tx pending, grace not over: wait",
        [*START, seen(order(A)), read(tx(in_block=False, block_number=None))],
        None,
        now=5.0,
    ),
    Case(
        "record holds less than the tx on two reads after its block: capped, under-delivered",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(HALF_SUN)),
            read(tx(), record=holding(HALF_SUN), clock=2.5),
        ],
        Verdict.UNDER_DELIVERED,
        basis=Basis.RECORD_CAPPED,
        reason="the cap rests on 2 agreeing read(s)",
        energy=energy_for_sun(HALF_SUN, TEL, TEW),
    ),
    Case(
        "record empty on two reads after the block: the delegation is gone, mismatch",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(0)),
            read(tx(), record=holding(0), clock=2.5),
        ],
        Verdict.PROVIDER_MISMATCH,
        now=20.0,
        basis=Basis.RECORD_CAPPED,
        reason="part was already reclaimed",
    ),
    Case(
        "record short on one read after the block: read it again before capping",
        [*START, seen(order(A)), read(tx(), record=holding(HALF_SUN))],
        None,
        now=20.0,
        reason="on 1 read(s) after its block",
    ),
    Case(
        "record short on one read, then full: delivered",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(0)),
            read(tx(), record=holding(SUN), clock=2.5),
        ],
        Verdict.DELIVERED,
        basis=Basis.TX,
    ),
    Case(
        "record short, then the same again from a refresh without prices: capped",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(HALF_SUN)),
            TxRead(
                tx(),
                clock=2.5,
                at=2.5,
                record=holding(HALF_SUN),
                owner=KEY,
                reread=False,
                record_after_block=True,
            ),
        ],
        Verdict.UNDER_DELIVERED,
        basis=Basis.RECORD_CAPPED,
    ),
    Case(
        "record read beside the tx shows nothing: it may predate the block, never a cap",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(0), after_block=False),
            read(tx(), record=holding(0), after_block=False, clock=2.5),
            read(tx(), record=holding(0), after_block=False, clock=3.0),
        ],
        None,
        now=20.0,
        reason="on 0 read(s) after its block",
    ),
    Case(
        "record short on one read at the deadline: nothing proven either way",
        [*START, seen(order(A)), read(tx(), record=holding(0))],
        Verdict.UNKNOWN,
        final=True,
        now=20.0,
    ),
    Case(
        "record short, then short by another amount: the count starts again",
        [
            *START,
            seen(order(A)),
            read(tx(), record=holding(0)),
            read(tx(), record=holding(HALF_SUN), clock=2.5),
        ],
        None,
        now=20.0,
        reason="on 1 read(s) after its block",
    ),
    Case(
        "reclaimed as agreed: the record is not held against it",
        [
            *START,
            seen(order(A, confirm="RECLAIM_CONFIRMED")),
            read(
                tx(),
                record=DelegatedResource(
                    from_address=OWNER, to_address=TARGET, energy_sun=0, records=0
                ),
            ),
        ],
        Verdict.DELIVERED,
        basis=Basis.TX,
    ),
    Case(
        "node clock anchor: a block stamped after the read counts",
        [*DATED, seen(order(A)), read(tx(block_time_ms=NODE_MS + 2_000))],
        Verdict.DELIVERED,
        basis=Basis.TX,
    ),
    Case(
        "node clock anchor: a block stamped after the read's second counts",
        [*DATED, seen(order(A)), read(tx(block_time_ms=NODE_MS - NODE_CLOCK_MARGIN_MS + 1_000))],
        Verdict.DELIVERED,
    ),
    Case(
        "node clock anchor: the block of the read's own second may still have been packing",
        [*DATED, seen(order(A)), read(tx(block_time_ms=NODE_MS))],
        Verdict.DELIVERED,
        basis=Basis.TX,
    ),
    Case(
        "node clock anchor: a block stamped a second before the read's second was sealed",
        [
            *DATED,
            seen(order(A)),
            read(tx(block_time_ms=NODE_MS - 1_000)),
            read(tx(block_time_ms=NODE_MS - 1_000)),
        ],
        Verdict.PROVIDER_MISMATCH,
        reason="before the order was placed",
    ),
    Case(
        "node clock anchor: a block stamped the margin or more before the read: not ours",
        [
            *DATED,
            seen(order(A)),
            read(tx(block_time_ms=NODE_MS - NODE_CLOCK_MARGIN_MS)),
            read(tx(block_time_ms=NODE_MS - NODE_CLOCK_MARGIN_MS)),
        ],
        Verdict.PROVIDER_MISMATCH,
        reason="before the order was placed (the node's clock read",
    ),
    Case(
        "priced by network totals read after its block (the look read no snapshot)",
        [*START, seen(order(A)), priced(tx())],
        Verdict.DELIVERED,
        basis=Basis.TX,
        energy=energy_for_sun(SUN, TEL, TEW),
    ),
    Case(
        "network totals read after its block show the stake worth half: UNDER_DELIVERED",
        [*START, seen(order(A)), priced(tx(), weight=2 * TEW)],
        Verdict.UNDER_DELIVERED,
        final=True,
        now=100.0,
        energy=energy_for_sun(SUN, TEL, 2 * TEW),
    ),
    Case(
        "no snapshot and no totals in the look: cannot price yet, no verdict",
        [*START, seen(order(A)), TxRead(tx(), clock=2.0, at=2.0, owner=KEY)],
        None,
        reason="no network totals read after its block",
    ),
    Case(
        "resumed, no head: older than the provider's order time by more than the margin",
        [
            seen(order(A, created_at_ms=HEAD.timestamp_ms)),
            read(tx(block_time_ms=HEAD.timestamp_ms - CAUSALITY_MARGIN_MS - 3_000)),
            read(tx(block_time_ms=HEAD.timestamp_ms - CAUSALITY_MARGIN_MS - 3_000)),
        ],
        Verdict.PROVIDER_MISMATCH,
        reason="before the provider's order time",
    ),
    Case(
        "resumed, no head: within the margin counts",
        [
            seen(order(A, created_at_ms=HEAD.timestamp_ms)),
            read(tx(block_time_ms=HEAD.timestamp_ms - 3_000)),
        ],
        Verdict.DELIVERED,
    ),
    # --- several named txs ----------------------------------------------------------------
    Case(
        "two halves, both count: delivered, summed",
        [
            *START,
            seen(order(A, B)),
            read(tx(A, balance_sun=HALF_SUN)),
            read(tx(B, balance_sun=SUN - HALF_SUN)),
        ],
        Verdict.DELIVERED,
        energy=energy_for_sun(HALF_SUN, TEL, TEW) + energy_for_sun(SUN - HALF_SUN, TEL, TEW),
    ),
    Case(
        "two halves, the second not read yet: wait",
        [*START, seen(order(A, B)), read(tx(A, balance_sun=HALF_SUN))],
        None,
    ),
    Case(
        "two halves, the second missing after the grace: under-delivered",
        [
            *START,
            seen(order(A, B)),
            read(tx(A, balance_sun=HALF_SUN)),
            read(tx(B, found=False, in_block=False, block_number=None)),
            read(tx(B, found=False, in_block=False, block_number=None)),
        ],
        Verdict.UNDER_DELIVERED,
        now=20.0,
        reason="not found on chain",
    ),
    Case(
        "full energy in one tx, the other disqualified: under-delivered, never delivered",
        [
            *START,
            seen(order(A, B)),
            read(tx(A)),
            read(tx(B, receiver=ELSEWHERE)),
            read(tx(B, receiver=ELSEWHERE)),
        ],
        Verdict.UNDER_DELIVERED,
        reason="not to the target",
    ),
    # --- no tx named: the EnergyLimit delta --------------------------------------------------
    Case(
        "no tx, provider unreachable past the grace, delta alone: delivered by DELTA",
        [*START, SnapshotRead(snapshot(ENERGY), clock=20.0)],
        Verdict.DELIVERED,
        now=20.0,
        basis=Basis.DELTA,
    ),
    Case(
        "no tx, delta, within the grace: wait",
        [*START, SnapshotRead(snapshot(ENERGY), clock=2.0)],
        None,
        now=2.0,
    ),
    Case(
        "no tx, delta, another order of ours touched the address: nobody's proof",
        [*START, SnapshotRead(snapshot(ENERGY), clock=20.0)],
        Verdict.UNKNOWN,
        final=True,
        now=20.0,
        others=("neighbour",),
        reason="other orders of ours",
    ),
    # --- the provider's word ---------------------------------------------------------------
    Case(
        "refused at the first attempt: REJECTED",
        [*START, CreateRefused("insufficient balance", clock=1.0, maybe_sent=False)],
        Verdict.REJECTED,
        reason="nothing was charged",
    ),
    Case(
        "refused after an attempt that may have been taken: never REJECTED",
        [*START, CreateRefused("insufficient balance", clock=1.0, maybe_sent=True)],
        Verdict.UNKNOWN,
        final=True,
        now=100.0,
        reason="may have been charged",
    ),
    Case(
        "'duplicate' at the first attempt: an order exists, not a rejection",
        [
            *START,
            CreateRefused("order already exists", clock=1.0, maybe_sent=False, duplicate=True),
        ],
        Verdict.UNKNOWN,
        final=True,
        now=100.0,
        reason="an order exists",
    ),
]


def verdict_of(case: Case) -> tuple[Verdict | None, list[str], Basis, int | None]:
    state = WatchState(request=REQUEST)
    for event in case.events:
        state = state.apply(event)
    attribution = attribute(state, case.policy, now=case.now, final=case.final, others=case.others)
    judgement = judge(state, attribution, case.policy, now=case.now, final=case.final)
    words = [*attribution.notes, *judgement.notes, *state.facts]
    for finding in attribution.findings:
        words.extend(finding.reasons)
    return judgement.verdict, words, attribution.basis, attribution.energy


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_judge_rule(case: Case) -> None:
    verdict, words, basis, energy = verdict_of(case)
    assert verdict is case.expect, words
    if case.basis is not None:
        assert basis is case.basis
    if case.reason is not None:
        assert any(case.reason in word for word in words), words
    if case.energy is not None:
        assert energy == case.energy


def test_the_term_of_a_locked_delegation_says_until_when() -> None:
    state = WatchState(request=REQUEST)
    locked = tx(lock=True, lock_period=1200)  # an hour of blocks
    for event in [*START, seen(order(A)), read(locked)]:
        state = state.apply(event)
    attribution = attribute(state, POLICY, now=3.0, final=False)
    assert attribution.term is not None and attribution.term.locked
    assert attribution.term.locked_until_ms == locked.block_time_ms + 1200 * 3000  # type: ignore[operator]
    assert attribution.term.summary.startswith("locked until ")


def test_the_order_term_is_its_weakest_delegation() -> None:
    state = WatchState(request=REQUEST)
    events = [
        *START,
        seen(order(A, B)),
        read(tx(A, balance_sun=HALF_SUN, lock=True, lock_period=1200)),
        read(tx(B, balance_sun=SUN - HALF_SUN)),
    ]
    for event in events:
        state = state.apply(event)
    term = attribute(state, POLICY, now=3.0, final=False).term
    assert term is not None and not term.locked and "revocable" in term.summary


def test_state_is_never_mutated_by_apply() -> None:
    start = WatchState(request=REQUEST)
    after = start.apply(seen(order(A)))
    assert start.order is None and after.order is not None
    assert start.txs == {} and start.apply(read(tx())).txs[A].consistent == 1


@pytest.mark.parametrize(
    ("events", "now", "silent"),
    [
        ([], 50.0, False),  # nothing sent: nobody to be silent
        ([CreateSent(clock=0.5, at=0.5)], 10.0, False),  # the create is out, within the grace
        ([CreateSent(clock=0.5, at=0.5)], 10.5, True),  # no answer for the whole grace
        # Answered within the grace, naming no tx yet: about to name it.
        ([CreateSent(clock=0.5, at=0.5), seen(order(), clock=5.0)], 50.0, False),
        # Answered after the grace and still naming no tx.
        ([CreateSent(clock=0.5, at=0.5), seen(order(), clock=11.0)], 50.0, True),
    ],
)
def test_the_delta_may_speak_early_only_for_a_silent_provider(
    events: list[Event], now: float, silent: bool
) -> None:
    state = WatchState(request=REQUEST)
    for event in events:
        state = state.apply(event)
    assert provider_silent(state, POLICY, now) is silent
