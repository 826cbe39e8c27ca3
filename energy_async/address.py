"""TRON address validation and conversion, stricter than tronpy's.

Every order and every chain query validates its address here before anything is sent: java-tron
answers ``{}`` for a base58 address with a bad checksum, which looks exactly like an unactivated
account, and tronpy accepts 42-hex with any prefix byte and ``0x`` Ethereum forms. Only a
base58check "T..." address or its 41-prefixed hex form (21 bytes, first byte 0x41) passes.

The codec is a few lines of base58check over hashlib, so the module itself imports in under
5 ms (3.7 ms median on the shared 2-core benchmark machine, where ``import json`` takes 3.6 ms:
``benchmarks/bench_startup.py``) and the first order stalls nothing; ``import tronpy.keys``
pulls in the whole client, 0.7-0.9 s there and about 20 MiB. The tests hold the codec against
tronpy's, an implementation no one here wrote.
"""

from __future__ import annotations

import functools
import hashlib
import string

from energy_async.errors import InvalidAddress

__all__ = ["is_valid_address", "to_base58", "to_hex", "validate_address"]

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_ALPHABET = frozenset(_ALPHABET)
_DIGIT = {char: value for value, char in enumerate(_ALPHABET)}
_HEX_DIGITS = frozenset(string.hexdigits)
_BASE58_LENGTH = 34
_HEX_LENGTH = 42
_SHOWN_CHARS = 48


def validate_address(value: object) -> str:
    """Return the canonical base58check form of ``value`` or raise `InvalidAddress`."""
    if not isinstance(value, str):
        raise InvalidAddress(f"address must be a str, not {type(value).__name__}")
    return _canonical(str.__str__(value))[0]


def to_base58(value: str) -> str:
    """Convert a base58 or 41-prefixed hex address to base58check ("T...")."""
    return validate_address(value)


def to_hex(value: str) -> str:
    """Convert a base58 or 41-prefixed hex address to lowercase 41-prefixed hex."""
    if not isinstance(value, str):
        raise InvalidAddress(f"address must be a str, not {type(value).__name__}")
    return _canonical(str.__str__(value))[1]


def is_valid_address(value: object) -> bool:
    """True when `validate_address` would accept ``value``."""
    try:
        validate_address(value)
    except InvalidAddress:
        return False
    return True


@functools.lru_cache(maxsize=8192)
def _canonical(value: str) -> tuple[str, str]:
    """(base58, hex) for a valid address; cached because batches repeat the same targets."""
    _reject_malformed(value)
    if value[0] == "T":
        return _from_base58(value)
    return _from_hex(value)


def _reject_malformed(value: str) -> None:
    """Raise unless ``value`` looks like a 34-char "T..." base58 or a 42-char 41-hex string."""
    if not value:
        raise InvalidAddress("address is empty")
    shown = _shown(value)
    if any(char.isspace() for char in value):
        raise InvalidAddress(f"address contains whitespace: {shown}")
    if value[:2] in ("0x", "0X"):
        raise InvalidAddress(
            f"0x-prefixed (Ethereum-style) address is not accepted; use 'T...' or 41-hex: {shown}"
        )
    chars = set(value)
    if value[0] == "T":
        if not chars <= _BASE58_ALPHABET:
            raise InvalidAddress(f"base58 address has characters outside base58: {shown}")
        if len(value) != _BASE58_LENGTH:
            raise InvalidAddress(
                f"base58 address must be {_BASE58_LENGTH} characters, got {len(value)}: {shown}"
            )
        return
    if chars <= _HEX_DIGITS:
        if len(value) != _HEX_LENGTH:
            raise InvalidAddress(
                f"hex address must be {_HEX_LENGTH} characters (41 + 20 bytes), "
                f"got {len(value)}: {shown}"
            )
        if value[:2] != "41":
            raise InvalidAddress(
                f"hex address must start with 41 (the TRON prefix), not {value[:2]!r}: {shown}"
            )
        return
    raise InvalidAddress(f"not a TRON address (expected 'T...' base58 or 41-hex): {shown}")


def _from_hex(value: str) -> tuple[str, str]:
    hex_form = value.lower()
    return _b58check_encode(bytes.fromhex(hex_form)), hex_form


def _from_base58(value: str) -> tuple[str, str]:
    payload = _b58check_decode(value)
    if payload is None:
        raise InvalidAddress(f"bad base58check checksum: {_shown(value)}")
    if len(payload) != _HEX_LENGTH // 2 or payload[0] != 0x41:
        raise InvalidAddress(f"base58 address does not decode to 0x41 + 20 bytes: {_shown(value)}")
    return value, payload.hex()


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def _b58check_encode(payload: bytes) -> str:
    data = payload + _checksum(payload)
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _b58check_decode(text: str) -> bytes | None:
    """The payload, or ``None`` when the checksum does not match (characters are checked before)."""
    number = 0
    for char in text:
        number = number * 58 + _DIGIT[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    data = b"\0" * zeros + body
    if len(data) < 5:
        return None
    payload, checksum = data[:-4], data[-4:]
    return payload if _checksum(payload) == checksum else None


def _shown(value: str) -> str:
    """A bounded repr for messages; addresses are public, but inputs can be huge."""
    if len(value) > _SHOWN_CHARS:
        return repr(value[:_SHOWN_CHARS]) + f"... ({len(value)} chars)"
    return repr(value)
