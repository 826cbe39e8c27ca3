"""The order ledger: exclusivity of txs and who touched which address when."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from energy_async.errors import JournalUnavailable
from energy_async.ledger import OrderLedger, Window, lingers
from energy_async.models import (
    DeliveryResult,
    Evidence,
    Order,
    OrderRequest,
    TxFinding,
    Verdict,
)
from tests.coordination import stage, tick_after_create

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"


def test_a_tx_is_credited_to_the_first_order_that_claims_it() -> None:
    ledger = OrderLedger()
    ledger.open("a", TARGET, start=10.0)
    ledger.open("b", TARGET, start=11.0)
    assert ledger.claim("t1", "a") == "a"
    assert ledger.claim("t1", "b") == "a"
    assert ledger.claim("t1", "a") == "a"  # idempotent for its owner
    assert ledger.owner("t2") is None


def test_windows_that_meet_touch_and_lingering_ones_never_end() -> None:
    ledger = OrderLedger()
    proven = ledger.open("proven", TARGET, start=10.0)
    ledger.close(proven, lingers=False, end=20.0)
    unknown = ledger.open("unknown", TARGET, start=30.0)
    ledger.close(unknown, lingers=True, end=40.0)
    assert ledger.others_touched("me", TARGET, 15.0, 16.0) == ["proven"]
    assert ledger.others_touched("me", TARGET, 25.0, 26.0) == []
    assert ledger.others_touched("me", TARGET, 50.0, 60.0) == ["unknown"]  # may still land
    assert ledger.others_touched("me", "TQ4gjjpAjLNnE67UFbmK5wVt5fzLfyEVs3", 0.0, 99.0) == []
    assert ledger.others_touched("proven", TARGET, 15.0, 16.0) == []  # never itself


def result(verdict: Verdict, counted: bool, key: str = "old") -> DeliveryResult:
    request = OrderRequest(target=TARGET, energy=65_000, client_order_id=key)
    order = Order(provider="catfee", id="1", client_order_id=key, target=TARGET, energy=65_000)
    evidence = Evidence(
        started_at=100.0,
        settled_at=110.0,
        delegations=[TxFinding(txid="t-old", counted=counted)],
    )
    return DeliveryResult(
        verdict=verdict,
        provider="catfee",
        client_order_id=key,
        request=request,
        order=None if verdict is Verdict.REJECTED else order,
        evidence=evidence,
    )


def test_a_journaled_result_rebuilds_its_window_and_its_credits() -> None:
    ledger = OrderLedger()
    ledger.remember(result(Verdict.DELIVERED, counted=True))
    assert ledger.claim("t-old", "resumed") == "old"  # exclusivity across a resume
    assert ledger.others_touched("resumed", TARGET, 105.0, 106.0) == ["old"]
    assert ledger.others_touched("resumed", TARGET, 200.0, 300.0) == []


def test_which_results_linger() -> None:
    assert not lingers(result(Verdict.DELIVERED, counted=True))
    assert not lingers(result(Verdict.REJECTED, counted=False))  # nothing was bought
    assert lingers(result(Verdict.UNKNOWN, counted=False))
    assert lingers(result(Verdict.NOT_DELIVERED, counted=False))


def test_a_tx_ceded_to_another_workers_order_is_that_orders() -> None:
    ledger = OrderLedger()
    mine = ledger.open("mine", TARGET, start=10.0)
    assert ledger.claim("t1", "mine") == "mine"
    ledger.cede("t1", "mine", "theirs")  # the shared journal says another order holds it
    assert ledger.owner("t1") == "theirs"
    assert ledger.claim("t1", "mine") == "theirs"  # every later look sees it taken
    assert mine.credited == set()


# --- the shared journal's claim, as the coordinator uses it -----------------------------------


class Hooks:
    """Journal hooks whose ``claim_credits`` says what a shared journal would."""

    def __init__(self, held_by: str | None = None, fails: bool = False) -> None:
        self.held_by = held_by
        self.fails = fails
        self.claims: list[tuple[str, str, tuple[str, ...]]] = []

    async def on_sending(self, client_order_id: str) -> None:
        return None

    async def on_order(self, client_order_id: str, order: Order) -> None:
        return None

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> dict[str, str]:
        self.claims.append((client_order_id, target, tuple(tx_ids)))
        if self.fails:
            raise JournalUnavailable("the journal's database is gone", held=(client_order_id,))
        return {} if self.held_by is None else dict.fromkeys(tx_ids, self.held_by)


async def settle_with(hooks: Hooks) -> DeliveryResult | JournalUnavailable:
    async with stage() as st:
        request = st.catfee.session.prepare(target=st.sandbox.new_target(), energy=65_000)
        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, st.sandbox, st.sandbox.catfee, None)
            try:
                result: DeliveryResult | JournalUnavailable = await st.catfee.settle(
                    request, deadline=3.0, hooks=hooks
                )
            except JournalUnavailable as lost:
                result = lost
            group.cancel_scope.cancel()
    return result


async def delivered_with(hooks: Hooks) -> DeliveryResult:
    result = await settle_with(hooks)
    assert isinstance(result, DeliveryResult)
    return result


@pytest.mark.anyio
async def test_a_tx_the_journal_credits_to_this_order_counts_once_claimed() -> None:
    hooks = Hooks()
    result = await delivered_with(hooks)
    assert result.verdict is Verdict.DELIVERED
    (finding,) = result.evidence.delegations
    assert hooks.claims == [(result.client_order_id, result.request.target, (finding.txid,))]


@pytest.mark.anyio
async def test_a_tx_another_workers_order_holds_counts_for_nothing_here() -> None:
    result = await delivered_with(Hooks(held_by="order-of-another-worker"))
    assert result.verdict is not Verdict.DELIVERED
    assert result.evidence.attributed_energy is None
    (finding,) = result.evidence.delegations
    assert not finding.counted
    assert any("credited to our order order-of-another-worker" in r for r in finding.reasons)


@pytest.mark.anyio
async def test_a_journal_that_cannot_claim_fails_the_order_with_no_credit() -> None:
    hooks = Hooks(fails=True)
    lost = await settle_with(hooks)
    assert isinstance(lost, JournalUnavailable)  # the order fails; no tx was credited
    assert len(hooks.claims) == 1


def test_windows_learnt_from_the_journal_replace_each_other_and_never_ours() -> None:
    ledger = OrderLedger()
    mine = ledger.open("mine", TARGET, start=10.0)
    learnt = [
        Window("theirs", TARGET, 12.0),
        Window("mine", TARGET, 5.0),
        Window("held", TARGET, 1.0),
    ]
    ledger.learn(TARGET, learnt, own={"held"})
    assert ledger.others_touched("mine", TARGET, 10.0, 20.0) == ["theirs"]
    assert mine.start == 10.0  # this process's own window is kept as it is
    ledger.learn(TARGET, [])  # "theirs" settled with its delivery proven since
    assert ledger.others_touched("mine", TARGET, 10.0, 20.0) == []
    ledger.learn(TARGET, [Window("lost", TARGET, 1.0, 2.0, lingers=True)])
    assert ledger.others_touched("mine", TARGET, 10.0, 20.0) == ["lost"]  # may still land
    ledger.open("lost", TARGET, start=30.0)  # taken over: watched here from now on
    ledger.learn(TARGET, [], own={"lost"})
    assert ledger.others_touched("mine", TARGET, 10.0, 40.0) == ["lost"]
