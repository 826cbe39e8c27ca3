"""TRON address codec for the sandbox, kept apart from the client's so neither can mask the other.

Mirrors java-tron's split: characters outside the alphabet are an error (``ValueError``), while a
wrong checksum or length just yields ``None`` (``Commons.decodeFromBase58Check``).
"""

from __future__ import annotations

import hashlib

__all__ = [
    "ADDRESS_PREFIX",
    "b58decode",
    "b58encode",
    "decode_address",
    "encode_address",
    "is_valid_address",
]

ADDRESS_PREFIX = 0x41
_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(_ALPHABET)}


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _ALPHABET[rest] + digits
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + digits


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _INDEX:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + _INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def encode_address(raw: bytes) -> str:
    """21 raw bytes (0x41 + 20) -> base58check ``T...`` address."""
    return b58encode(raw + _checksum(raw))


def decode_address(text: str) -> bytes | None:
    """``T...`` -> 21 raw bytes; ``None`` for a bad checksum, length or prefix."""
    data = b58decode(text)
    payload, check = data[:-4], data[-4:]
    if len(data) != 25 or _checksum(payload) != check or payload[0] != ADDRESS_PREFIX:
        return None
    return payload


def is_valid_address(text: str) -> bool:
    try:
        return decode_address(text) is not None
    except ValueError:
        return False
