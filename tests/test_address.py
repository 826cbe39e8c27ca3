from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tronpy.keys import to_base58check_address, to_hex_address

from energy_async.address import is_valid_address, to_base58, to_hex, validate_address
from energy_async.errors import InvalidAddress

# Mainnet account from tron.md examples B and C, with its hex form from tronpy.
KNOWN_BASE58 = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
KNOWN_HEX = "41fd49eda0f23ff7ec1d03b52c3a45991c24cd440e"

bodies = st.binary(min_size=20, max_size=20)


def test_known_address_converts_both_ways() -> None:
    assert validate_address(KNOWN_BASE58) == KNOWN_BASE58
    assert to_hex(KNOWN_BASE58) == KNOWN_HEX
    assert to_base58(KNOWN_HEX) == KNOWN_BASE58
    assert to_base58(KNOWN_HEX.upper()) == KNOWN_BASE58
    assert to_hex(KNOWN_HEX.upper()) == KNOWN_HEX


@given(bodies)
def test_round_trip_matches_tronpy(body: bytes) -> None:
    hex_form = "41" + body.hex()
    expected = to_base58check_address(hex_form)
    assert to_base58(hex_form) == expected
    assert validate_address(expected) == expected
    assert to_hex(expected) == hex_form == to_hex_address(expected)
    assert is_valid_address(expected) and is_valid_address(hex_form)


@given(st.one_of(st.text(), st.text(alphabet="0123456789abcdefABCDEFT", max_size=50)))
def test_arbitrary_strings_are_valid_or_invalid_address(value: str) -> None:
    try:
        result = validate_address(value)
    except InvalidAddress as error:
        assert str(error)
        assert not is_valid_address(value)
    else:
        # Anything accepted is canonical and agrees with tronpy.
        assert result[0] == "T" and len(result) == 34
        assert to_hex_address(result)[:2] == "41"
        assert to_base58(to_hex(result)) == result


@given(
    st.one_of(
        st.binary(),
        st.integers(),
        st.none(),
        st.floats(),
        st.lists(st.text()),
        st.binary(min_size=21, max_size=21).map(bytearray),
    )
)
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidAddress, match="must be a str"):
        validate_address(value)
    with pytest.raises(InvalidAddress, match="must be a str"):
        to_hex(value)  # type: ignore[arg-type]
    assert not is_valid_address(value)


@given(bodies, st.integers(min_value=0, max_value=33), st.sampled_from("123456789ABCabcxyz"))
def test_any_single_char_change_is_caught(body: bytes, position: int, char: str) -> None:
    good = to_base58check_address("41" + body.hex())
    bad = good[:position] + char + good[position + 1 :]
    if bad != good:
        assert not is_valid_address(bad)  # a 4-byte checksum: 2**-32 chance of a clash


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        (" " + KNOWN_BASE58, "whitespace"),
        (KNOWN_BASE58 + "\n", "whitespace"),
        ("TZ4UXDV5ZhNW7fb2 AMSbgfAEZ7hWsnYS2g", "whitespace"),
        ("\u00a0" + KNOWN_BASE58, "whitespace"),
        ("TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2h", "checksum"),
        (KNOWN_BASE58[:-1], "34 characters"),
        (KNOWN_BASE58 + "1", "34 characters"),
        ("TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2O", "outside base58"),
        ("0x" + KNOWN_HEX[2:], "Ethereum"),
        ("0X" + KNOWN_HEX, "Ethereum"),
        ("42" + KNOWN_HEX[2:], "start with 41"),
        ("a0" + KNOWN_HEX[2:], "start with 41"),
        ("00" + KNOWN_HEX[2:], "start with 41"),
        (KNOWN_HEX[2:], "42 characters"),
        (KNOWN_HEX + "00", "42 characters"),
        ("ZZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g", "expected 'T...'"),
        ("not an address", "whitespace"),
        ("x" * 10_000, "expected 'T...'"),
    ],
)
def test_rejection_says_what_is_wrong(value: str, reason: str) -> None:
    with pytest.raises(InvalidAddress, match=reason) as caught:
        validate_address(value)
    assert caught.value.__cause__ is None
    assert len(str(caught.value)) < 300  # huge inputs are not echoed whole


@pytest.mark.parametrize("prefix", [0x40, 0x42])
def test_base58_with_valid_checksum_but_foreign_prefix_is_rejected(prefix: int) -> None:
    # 34 chars starting with "T" and a valid checksum, so tronpy accepts it; not 0x41 though.
    from tronpy.keys import base58

    body = b"\xff" * 20 if prefix == 0x40 else bytes(20)
    foreign = base58.b58encode_check(bytes([prefix]) + body).decode()
    assert foreign[0] == "T" and len(foreign) == 34
    assert to_base58check_address(foreign) == foreign  # tronpy's looser rule
    with pytest.raises(InvalidAddress, match="0x41"):
        validate_address(foreign)


def test_str_subclass_returns_plain_str() -> None:
    class Tagged(str):
        pass

    result = validate_address(Tagged(KNOWN_BASE58))
    assert type(result) is str and result == KNOWN_BASE58


def test_validation_never_loads_tronpy() -> None:
    # The first order must not stall the event loop on tronpy's import (~0.3 s, 20-35 MiB).
    code = (
        "import sys, energy_async, energy_async.address as a;"
        f"assert a.validate_address({KNOWN_BASE58!r}) == {KNOWN_BASE58!r};"
        f"assert a.to_base58({KNOWN_HEX!r}) == {KNOWN_BASE58!r};"
        "assert 'tronpy' not in sys.modules, 'tronpy imported by the address codec'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
