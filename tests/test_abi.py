"""TRC20 ABI encoding against the worked example in transfer.md §2.1, and round trips."""

from __future__ import annotations

import pytest
from Crypto.Hash import keccak  # pycryptodome, installed with tronpy: an independent keccak
from hypothesis import given
from hypothesis import strategies as st

from energy_async import abi
from energy_async.address import to_base58
from energy_async.errors import InputError, InvalidAddress

EXAMPLE_TO = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
EXAMPLE_PARAMETER = (
    "000000000000000000000000fd49eda0f23ff7ec1d03b52c3a45991c24cd440e"
    "00000000000000000000000000000000000000000000000000000000000f4240"
)


def test_worked_example_from_the_reference() -> None:
    assert abi.encode_transfer(EXAMPLE_TO, 1_000_000) == EXAMPLE_PARAMETER
    assert len(EXAMPLE_PARAMETER) == 128
    data = abi.transfer_data(EXAMPLE_TO, 1_000_000)
    assert data == "a9059cbb" + EXAMPLE_PARAMETER
    assert len(bytes.fromhex(data)) == 68


def test_the_41_prefix_never_reaches_the_address_word() -> None:
    word = abi.encode_address_word(EXAMPLE_TO)
    assert word == "0" * 24 + "fd49eda0f23ff7ec1d03b52c3a45991c24cd440e"
    with pytest.raises(InvalidAddress):
        abi.decode_address_word("0" * 22 + "41" + word[24:])


@pytest.mark.parametrize("signature", sorted(abi.SELECTORS))
def test_selectors_are_keccak_of_the_signature(signature: str) -> None:
    digest = keccak.new(digest_bits=256, data=signature.encode()).hexdigest()
    assert abi.SELECTORS[signature] == digest[:8]


@pytest.mark.parametrize("bad", [-1, 2**256, True, 1.5])
def test_uint256_refuses_what_it_cannot_encode(bad: object) -> None:
    with pytest.raises(InputError):
        abi.encode_uint256(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "00", "zz" * 32, EXAMPLE_PARAMETER[:64]])
def test_decode_transfer_refuses_malformed_data(bad: str) -> None:
    with pytest.raises(InputError):
        abi.decode_transfer(bad)


def test_decode_accepts_the_full_call_data() -> None:
    assert abi.decode_transfer("a9059cbb" + EXAMPLE_PARAMETER) == (EXAMPLE_TO, 1_000_000)


addresses = st.binary(min_size=20, max_size=20).map(lambda raw: to_base58("41" + raw.hex()))


@given(to=addresses, amount=st.integers(min_value=0, max_value=abi.MAX_UINT256))
def test_every_valid_address_and_amount_round_trips(to: str, amount: int) -> None:
    parameter = abi.encode_transfer(to, amount)
    assert len(parameter) == 128
    assert abi.decode_transfer(parameter) == (to, amount)
    assert abi.decode_uint256(parameter[64:]) == amount
