"""Energy math: what delegated sun is worth, and how far from the order a delivery may drift.

Providers delegate staked TRX, not energy. java-tron turns the receiver's staked sun into energy
with (``EnergyProcessor.calculateGlobalEnergyLimit``, Stake 2.0)::

    EnergyLimit = (long)((double)frozen_sun / 1e6 * ((double)TotalEnergyLimit / TotalEnergyWeight))

where ``TotalEnergyWeight`` (TEW) counts whole TRX staked for energy network-wide and moves every
block, and ``TotalEnergyLimit`` (TEL) is 180e9 on mainnet. Always use TEL and TEW from the same
``getaccountresource`` response.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec

from energy_async.errors import InputError

__all__ = [
    "DRIFT_BASIS_POINTS",
    "ROUNDING_SLACK",
    "SUN_PER_TRX",
    "TOTALS_MAX_AGE",
    "EnergyTotals",
    "TotalsWindow",
    "delivery_tolerance",
    "energy_for_sun",
    "sun_for_energy",
]

SUN_PER_TRX = 1_000_000
DRIFT_BASIS_POINTS = 50  # 0.5 %: see delivery_tolerance
ROUNDING_SLACK = 25  # energy units: see delivery_tolerance
TOTALS_MAX_AGE = 60.0  # seconds: see TotalsWindow


class EnergyTotals(msgspec.Struct, frozen=True, kw_only=True):
    """TEL and TEW from one ``getaccountresource`` answer (the same for every address), and
    the node's clock (its ``Date`` header, whole seconds) when it answered."""

    total_energy_limit: int
    total_energy_weight: int
    node_time_ms: int


class TotalsWindow:
    """The newest network totals one Verifier has read, shared by all of its orders.

    Pricing a delegation needs TEL/TEW as they are once it is in its block. Totals qualify
    only if the node's clock had passed the block's timestamp when they were read (so a stake
    change between the provider's quote and the block is always seen) and they are at most
    ``max_age`` of our seconds old: TEW moves far less than the 0.5 % tolerance in a minute
    (``delivery_tolerance``). One read then prices every delegation that landed before it,
    instead of one ``getaccountresource`` per order.
    """

    def __init__(
        self, max_age: float = TOTALS_MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._latest: EnergyTotals | None = None
        self._learned = 0.0

    def learn(self, totals: EnergyTotals) -> None:
        latest = self._latest
        if latest is None or totals.node_time_ms >= latest.node_time_ms:
            self._latest, self._learned = totals, self._clock()

    def learned_clock(self) -> float:
        """When (on its clock) totals were last learned; -inf before any."""
        return self._learned if self._latest is not None else -math.inf

    def since(self, block_time_ms: int) -> EnergyTotals | None:
        """Totals read after a block timestamped ``block_time_ms``, if still fresh."""
        latest = self._latest
        if latest is None or latest.node_time_ms < block_time_ms:
            return None
        if self._clock() - self._learned > self.max_age:
            return None
        return latest


def energy_for_sun(balance_sun: int, total_energy_limit: int, total_energy_weight: int) -> int:
    """Energy that ``balance_sun`` of stake is worth: ``floor(sun / 1e6 * TEL / TEW)``.

    Computed in exact integers (``sun * TEL // (1e6 * TEW)``). java-tron uses doubles, which can
    land one unit lower when the exact product is an integer; the tolerance absorbs that.
    """
    _check_totals(total_energy_limit, total_energy_weight)
    if balance_sun < 0:
        raise InputError(f"balance_sun must not be negative, got {balance_sun}")
    return balance_sun * total_energy_limit // (SUN_PER_TRX * total_energy_weight)


def sun_for_energy(energy: int, total_energy_limit: int, total_energy_weight: int) -> int:
    """Sun a provider must delegate for ``energy``: whole TRX, rounded up.

    ``ceil(energy * TEW / TEL)`` TRX, so ``energy_for_sun`` of the result is at least
    ``energy`` at the same totals (6,851 TRX for 65,000 energy at TEW 18,971,780,957).
    """
    _check_totals(total_energy_limit, total_energy_weight)
    if energy < 0:
        raise InputError(f"energy must not be negative, got {energy}")
    whole_trx = -(-energy * total_energy_weight // total_energy_limit)
    return whole_trx * SUN_PER_TRX


def delivery_tolerance(expected_energy: int) -> int:
    """How far below ``expected_energy`` a delivery may land and still count as delivered.

    The coordinator compares the ordered quantity with what the delegated sun is worth *now*
    (``energy_for_sun`` at the latest snapshot's TEL/TEW). The two differ, without anyone
    under-delivering, because of:

    - TEW drift between the provider's quote and our reading. tron.md's worked example: 65,000
      energy is 6,851 TRX at TEW 18,971,780,957; 0.5 % more TEW makes the same delegation worth
      64,677 (-323, i.e. -0.497 %). Over an order's window of minutes TEW moves far less than
      that, so 0.5 % (``DRIFT_BASIS_POINTS``) covers it with room to spare, while a provider
      that keeps back even 1 % is still caught.
    - Whole-TRX rounding by the provider (a provider rounding to nearest instead of up loses
      less than one TRX, worth TEL/TEW = 9.5 to 10.9 energy at tron.md's totals B and C), the
      floor in ``energy_for_sun`` (1 unit) and java-tron's double arithmetic (1 unit). Two TRX
      plus two units at the higher rate is 23; ``ROUNDING_SLACK`` is 25.

    The slack is one-sided: more energy than ordered is always fine. For 65,000 energy it is
    ``ceil(65,000 * 0.005) + 25 = 350``.
    """
    if expected_energy < 0:
        raise InputError(f"expected_energy must not be negative, got {expected_energy}")
    drift = -(-expected_energy * DRIFT_BASIS_POINTS // 10_000)
    return drift + ROUNDING_SLACK


def _check_totals(total_energy_limit: int, total_energy_weight: int) -> None:
    if total_energy_limit <= 0 or total_energy_weight <= 0:
        raise InputError(
            "TotalEnergyLimit and TotalEnergyWeight must be positive "
            f"(got {total_energy_limit} and {total_energy_weight})"
        )
