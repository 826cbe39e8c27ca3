"""TRC20 call encoding: the ``parameter`` words of ``transfer(address,uint256)`` and friends.

java-tron takes ``function_selector`` as text and hashes it itself, so what a client sends is
the ABI words *without* the 4-byte selector (transfer.md §2.1). An address word is 12 zero bytes
and the 20 address bytes: the TRON prefix ``0x41`` is dropped. Leaving it in makes the
simulation fail on TronGrid (vultisig-android#2091); tronweb swaps ``41`` for ``0x`` the same
way. The selectors below are ``keccak256(signature)[:4]``, checked in the tests.
"""

from __future__ import annotations

from typing import Final

from energy_async.address import to_base58, to_hex, validate_address
from energy_async.errors import InputError, InvalidAddress

__all__ = [
    "BALANCE_OF",
    "DECIMALS",
    "MAX_UINT256",
    "SELECTORS",
    "TRANSFER",
    "decode_address_word",
    "decode_transfer",
    "decode_uint256",
    "encode_address_word",
    "encode_transfer",
    "encode_uint256",
    "transfer_data",
]

TRANSFER: Final = "transfer(address,uint256)"  # no spaces: the node hashes this exact text
BALANCE_OF: Final = "balanceOf(address)"
DECIMALS: Final = "decimals()"
SELECTORS: Final = {TRANSFER: "a9059cbb", BALANCE_OF: "70a08231", DECIMALS: "313ce567"}
MAX_UINT256: Final = 2**256 - 1
_WORD_HEX = 64
_ZERO_PAD = "0" * 24  # the 12 zero bytes above a 20-byte address


def encode_uint256(value: int) -> str:
    """One big-endian 32-byte word as 64 lowercase hex characters."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"a uint256 must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_UINT256:
        raise InputError("a uint256 must be between 0 and 2**256 - 1")
    return f"{value:064x}"


def encode_address_word(address: str) -> str:
    """An address as an ABI word: 12 zero bytes, then the 20 bytes after the ``41`` prefix."""
    return _ZERO_PAD + to_hex(address)[2:]


def encode_transfer(to: str, amount: int) -> str:
    """The 128-hex ``parameter`` of ``transfer(to, amount)``; ``amount`` in base units."""
    return encode_address_word(to) + encode_uint256(amount)


def transfer_data(to: str, amount: int) -> str:
    """The full call data (selector + parameter, 68 bytes) for nodes that take ``data``."""
    return SELECTORS[TRANSFER] + encode_transfer(to, amount)


def decode_uint256(word: str) -> int:
    """A 64-hex word as an int (the first word when a result carries more)."""
    return int(_words(word, at_least=1)[0], 16)


def decode_address_word(word: str) -> str:
    """An address word back to base58; refuses a word whose upper 12 bytes are not zero."""
    word = _words(word, at_least=1)[0]
    if word[:24] != _ZERO_PAD:
        raise InvalidAddress(f"not an address word (upper 12 bytes not zero): {word[:24]}")
    return to_base58("41" + word[24:])


def decode_transfer(parameter: str) -> tuple[str, int]:
    """``(to, amount)`` from a transfer ``parameter`` (or full data with the selector)."""
    text = parameter.lower()
    selector = SELECTORS[TRANSFER]
    if len(text) == 2 * _WORD_HEX + len(selector) and text.startswith(selector):
        text = text[len(selector) :]
    words = _words(text, at_least=2)
    if len(words) != 2:
        raise InputError(f"a transfer parameter is 2 words, got {len(words)}")
    return validate_address(decode_address_word(words[0])), int(words[1], 16)


def _words(text: str, *, at_least: int) -> list[str]:
    if not isinstance(text, str) or len(text) % _WORD_HEX:
        raise InputError("ABI data must be whole 32-byte words of hex")
    try:
        bytes.fromhex(text)
    except ValueError:
        raise InputError("ABI data is not hex") from None
    words = [text[i : i + _WORD_HEX].lower() for i in range(0, len(text), _WORD_HEX)]
    if len(words) < at_least:
        raise InputError(f"ABI data has {len(words)} words, needs {at_least}")
    return words
