from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from energy_async.energy import (
    ROUNDING_SLACK,
    SUN_PER_TRX,
    EnergyTotals,
    TotalsWindow,
    delivery_tolerance,
    energy_for_sun,
    sun_for_energy,
)
from energy_async.errors import InputError

MAINNET_TEL = 180_000_000_000
MAINNET_TEW = 18_971_780_957  # tron.md §1.2 worked example and example C
EARLIER_TEW = 16_551_109_184  # tron.md example B

tels = st.integers(min_value=1, max_value=10**12)
tews = st.integers(min_value=1, max_value=10**12)


def test_tron_md_worked_example() -> None:
    # 65,000 energy needs 6,851 TRX; that delegation gives +65,000 ...
    assert sun_for_energy(65_000, MAINNET_TEL, MAINNET_TEW) == 6_851_000_000
    assert energy_for_sun(6_851_000_000, MAINNET_TEL, MAINNET_TEW) == 65_000
    # ... and is worth 64,677 after TEW grows 0.5 %.
    assert energy_for_sun(6_851_000_000, MAINNET_TEL, MAINNET_TEW * 1005 // 1000) == 64_677


def test_real_drift_of_one_trx_delegation() -> None:
    # TZ4UXD...: a standing 1 TRX delegation showed EnergyLimit 10, later 9 (examples B and C).
    assert energy_for_sun(SUN_PER_TRX, MAINNET_TEL, EARLIER_TEW) == 10
    assert energy_for_sun(SUN_PER_TRX, MAINNET_TEL, MAINNET_TEW) == 9


def test_integer_arithmetic_has_no_float_surprises() -> None:
    # 0.1 TRX-like fractions that doubles get wrong: exact floor of 3 * 10 / 3 is 10.
    assert energy_for_sun(3 * SUN_PER_TRX, 10, 3) == 10
    assert energy_for_sun(10**18, MAINNET_TEL, 1) == 10**12 * MAINNET_TEL


@given(st.integers(min_value=0, max_value=10**12), tels, tews)
def test_sun_for_energy_is_the_least_whole_trx_that_delivers(
    energy: int, tel: int, tew: int
) -> None:
    sun = sun_for_energy(energy, tel, tew)
    assert sun % SUN_PER_TRX == 0
    assert energy_for_sun(sun, tel, tew) >= energy
    if sun:
        assert energy_for_sun(sun - SUN_PER_TRX, tel, tew) < energy


@given(st.integers(min_value=0, max_value=10**18), tels, tews)
def test_energy_for_sun_is_exact_floor(sun: int, tel: int, tew: int) -> None:
    energy = energy_for_sun(sun, tel, tew)
    assert energy * SUN_PER_TRX * tew <= sun * tel < (energy + 1) * SUN_PER_TRX * tew


def test_tolerance_for_the_minimum_order() -> None:
    tolerance = delivery_tolerance(65_000)
    assert tolerance == 325 + ROUNDING_SLACK
    # The 0.5 % TEW drift of tron.md (65,000 -> 64,677) is tolerated ...
    assert tolerance >= 65_000 - 64_677
    # ... and so is a provider rounding 6,850.92 TRX to nearest (6,851) or down (6,850).
    short = energy_for_sun(6_850_000_000, MAINNET_TEL, MAINNET_TEW * 1005 // 1000)
    assert 65_000 - short <= tolerance
    # A provider that keeps back 1 % is not.
    assert tolerance < 65_000 - 64_350


@given(st.integers(min_value=65_000, max_value=10**9))
def test_tolerance_covers_half_a_percent_and_never_one(expected: int) -> None:
    tolerance = delivery_tolerance(expected)
    drifted = energy_for_sun(
        sun_for_energy(expected, MAINNET_TEL, MAINNET_TEW), MAINNET_TEL, MAINNET_TEW * 1005 // 1000
    )
    assert expected - drifted <= tolerance
    assert tolerance < expected // 100


@pytest.mark.parametrize(
    "call",
    [
        lambda: energy_for_sun(-1, MAINNET_TEL, MAINNET_TEW),
        lambda: energy_for_sun(1, 0, MAINNET_TEW),
        lambda: energy_for_sun(1, MAINNET_TEL, 0),
        lambda: sun_for_energy(-1, MAINNET_TEL, MAINNET_TEW),
        lambda: sun_for_energy(1, MAINNET_TEL, -5),
        lambda: delivery_tolerance(-1),
    ],
)
def test_impossible_inputs_are_input_errors(call: object) -> None:
    with pytest.raises(InputError):
        call()  # type: ignore[operator]


def _totals(node_ms: int, weight: int = MAINNET_TEW) -> EnergyTotals:
    return EnergyTotals(
        total_energy_limit=MAINNET_TEL, total_energy_weight=weight, node_time_ms=node_ms
    )


def test_totals_price_only_blocks_before_they_were_read_and_only_while_fresh() -> None:
    now = [100.0]
    window = TotalsWindow(max_age=60.0, clock=lambda: now[0])
    assert window.since(0) is None  # nothing learned yet
    window.learn(_totals(9_000))
    assert window.since(9_000) == _totals(9_000)  # read in that block's second: after it
    assert window.since(9_001) is None  # a block after the read: the totals may predate it
    window.learn(_totals(6_000, weight=1))  # an older read never replaces a newer one
    assert window.since(6_000) == _totals(9_000)
    now[0] += 60.5
    assert window.since(9_000) is None  # too old to price anything
    window.learn(_totals(12_000))
    assert window.since(9_000) == _totals(12_000)
