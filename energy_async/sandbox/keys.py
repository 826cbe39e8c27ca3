"""The sandbox's signing keys: secp256k1 over a 32-byte hash, and the TRON address of a key.

What a TRON wallet does (java-tron ``SignUtils``/``ECKey``; tronpy's ``PrivateKey`` is the same
two primitives): sign the txid with a recoverable ECDSA signature (RFC 6979 nonces, so a key
and a hash always give the same bytes), and name the key by ``0x41`` + the last 20 bytes of
keccak-256 of the uncompressed public key (without its ``0x04`` prefix), in base58check. Built
on ``coincurve`` and pycryptodome's keccak directly, so the sandbox never imports tronpy (whose
package import costs 0.3 s and 20-35 MiB) and stays apart from the client's own code.
"""

from __future__ import annotations

from coincurve import PrivateKey as _Secp256k1Key
from Crypto.Hash import keccak

from energy_async.sandbox.base58 import encode_address

__all__ = ["SigningKey"]


class SigningKey:
    """One secp256k1 private key; ``ValueError`` for zero or a number past the curve order."""

    __slots__ = ("_key", "address")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("a private key is 32 bytes")
        self._key = _Secp256k1Key(secret)  # refuses 0 and n or more
        self.address = _address_of(self._key.public_key.format(compressed=False)[1:])

    def sign(self, digest: bytes) -> bytes:
        """r || s || recovery id (0 or 1): 65 bytes over a 32-byte hash, as tronpy's
        ``Signature.to_bytes()``; wallets put 27/28 in the last byte instead."""
        if len(digest) != 32:
            raise ValueError("only a 32-byte hash is signed")
        signed: bytes = self._key.sign_recoverable(digest, hasher=None)
        return signed

    def hex(self) -> str:
        return self._key.secret.hex()

    def __repr__(self) -> str:
        return f"SigningKey(address={self.address!r})"  # worthless keys, still never printed


def _address_of(public_key: bytes) -> str:
    digest = keccak.new(digest_bits=256, data=public_key).digest()
    return encode_address(b"\x41" + digest[-20:])
