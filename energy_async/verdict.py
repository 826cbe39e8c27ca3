"""The verdict table: what the provider says, crossed with what the chain shows.

Pure and small on purpose: it is the contract users rely on (README, "How verification works"),
so it is tested cell by cell, apart from the polling that feeds it.
"""

from __future__ import annotations

import enum

from energy_async.models import OrderPhase, Verdict

__all__ = ["ChainFinding", "ProviderFinding", "decide", "provider_finding"]


class ProviderFinding(enum.StrEnum):
    CONFIRMED = "CONFIRMED"  # DELEGATION_CONFIRMED (or later: reclaimed after delivery)
    PENDING = "PENDING"  # paid, delegating, or a status we do not know
    FAILED = "FAILED"  # refused or failed
    UNREACHABLE = "UNREACHABLE"  # no answer about this order at all


class ChainFinding(enum.StrEnum):
    FULL = "FULL"  # energy for this order within tolerance of what was ordered
    PART = "PART"  # some, but less than ordered minus tolerance
    NOTHING = "NOTHING"  # nothing attributable to this order (yet)
    UNREACHABLE = "UNREACHABLE"  # TronGrid never answered in the window


def provider_finding(phase: OrderPhase | None) -> ProviderFinding:
    if phase is None:
        return ProviderFinding.UNREACHABLE
    if phase is OrderPhase.CONFIRMED:
        return ProviderFinding.CONFIRMED
    if phase is OrderPhase.FAILED:
        return ProviderFinding.FAILED
    return ProviderFinding.PENDING


def decide(
    provider: ProviderFinding, chain: ChainFinding, *, final: bool, grace_over: bool = False
) -> Verdict | None:
    """The verdict, or ``None`` while it is not settled yet.

    ``final``: the deadline or the call budget is reached; whatever is known now is the answer.
    ``grace_over``: the provider has claimed a final state long enough ago that the chain should
    show it by now, so "nothing" on chain is an answer rather than a delay.
    """
    if chain is ChainFinding.FULL:
        return Verdict.DELIVERED
    if chain is ChainFinding.PART:
        # More may still arrive while the provider is working; once it says it is done (or
        # time is up) a partial delegation is the answer.
        if final or provider in (ProviderFinding.CONFIRMED, ProviderFinding.FAILED):
            return Verdict.UNDER_DELIVERED
        return None
    if chain is ChainFinding.UNREACHABLE:
        # Without the chain nothing can be proven either way.
        return Verdict.UNKNOWN if final else None
    # chain shows nothing for this order
    settled = final or grace_over
    if provider is ProviderFinding.CONFIRMED:
        return Verdict.PROVIDER_MISMATCH if settled else None
    if provider is ProviderFinding.FAILED:
        return Verdict.REJECTED if settled else None
    if provider is ProviderFinding.PENDING:
        return Verdict.NOT_DELIVERED if final else None
    return Verdict.UNKNOWN if final else None
