"""The order ledger: exclusivity of txs and who touched which address when."""

from __future__ import annotations

from energy_async.ledger import OrderLedger, lingers
from energy_async.models import (
    DeliveryResult,
    Evidence,
    Order,
    OrderRequest,
    TxFinding,
    Verdict,
)

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
