"""The verdict table of design.md, cell by cell, on the pure decision function."""

from __future__ import annotations

import pytest

from energy_async.models import OrderPhase, Verdict
from energy_async.verdict import ChainFinding, ProviderFinding, decide, provider_finding

P, C, V = ProviderFinding, ChainFinding, Verdict

# (provider says, chain shows) -> verdict once final (deadline reached / grace over)
TABLE = {
    (P.CONFIRMED, C.FULL): V.DELIVERED,
    (P.CONFIRMED, C.PART): V.UNDER_DELIVERED,
    (P.CONFIRMED, C.NOTHING): V.PROVIDER_MISMATCH,
    (P.PENDING, C.FULL): V.DELIVERED,
    (P.PENDING, C.PART): V.UNDER_DELIVERED,
    (P.PENDING, C.NOTHING): V.NOT_DELIVERED,
    (P.FAILED, C.FULL): V.DELIVERED,
    (P.FAILED, C.PART): V.UNDER_DELIVERED,
    (P.FAILED, C.NOTHING): V.REJECTED,
    (P.UNREACHABLE, C.FULL): V.DELIVERED,
    (P.UNREACHABLE, C.PART): V.UNDER_DELIVERED,
    (P.UNREACHABLE, C.NOTHING): V.UNKNOWN,
}


@pytest.mark.parametrize(("cell", "verdict"), TABLE.items(), ids=lambda v: str(v))
def test_every_cell_of_the_table_once_final(
    cell: tuple[ProviderFinding, ChainFinding], verdict: Verdict
) -> None:
    provider, chain = cell
    assert decide(provider, chain, final=True) is verdict


@pytest.mark.parametrize("provider", list(P))
def test_full_delivery_settles_at_once_whatever_the_provider_says(
    provider: ProviderFinding,
) -> None:
    assert decide(provider, C.FULL, final=False) is V.DELIVERED


def test_nothing_on_chain_is_not_an_answer_before_the_deadline_or_the_grace() -> None:
    for provider in P:
        assert decide(provider, C.NOTHING, final=False) is None


def test_a_claim_the_chain_does_not_back_settles_when_the_grace_is_over() -> None:
    assert decide(P.CONFIRMED, C.NOTHING, final=False, grace_over=True) is V.PROVIDER_MISMATCH
    assert decide(P.FAILED, C.NOTHING, final=False, grace_over=True) is V.REJECTED
    # A pending provider has claimed nothing: only the deadline settles it.
    assert decide(P.PENDING, C.NOTHING, final=False, grace_over=True) is None


def test_partial_delivery_waits_while_the_provider_is_still_working() -> None:
    assert decide(P.PENDING, C.PART, final=False) is None
    assert decide(P.UNREACHABLE, C.PART, final=False) is None
    assert decide(P.CONFIRMED, C.PART, final=False) is V.UNDER_DELIVERED
    assert decide(P.FAILED, C.PART, final=False) is V.UNDER_DELIVERED


@pytest.mark.parametrize("provider", list(P))
def test_an_unreachable_chain_proves_nothing(provider: ProviderFinding) -> None:
    assert decide(provider, C.UNREACHABLE, final=False) is None
    assert decide(provider, C.UNREACHABLE, final=True) is V.UNKNOWN


def test_provider_phases_map_to_findings() -> None:
    assert provider_finding(None) is P.UNREACHABLE
    assert provider_finding(OrderPhase.CONFIRMED) is P.CONFIRMED
    assert provider_finding(OrderPhase.FAILED) is P.FAILED
    for phase in (OrderPhase.PENDING, OrderPhase.DELEGATED, OrderPhase.UNKNOWN):
        assert provider_finding(phase) is P.PENDING
