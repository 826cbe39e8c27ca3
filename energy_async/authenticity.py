"""Is a delegation tx what the node says it is? Checked from the bytes, not from the JSON.

Three checks, all offline (java-tron: ``TransactionCapsule.getTransactionId`` is the SHA-256 of
``raw_data``; ``TransactionCapsule.validateSignature`` recovers each signature over that hash):

1. ``txID`` is the SHA-256 of ``raw_data_hex`` (and is the txid we asked for);
2. the contract decoded from ``raw_data_hex`` (:mod:`energy_async.tronproto`) has the type,
   owner, receiver, resource, balance, lock and lock_period the JSON shows;
3. the first signature recovers (secp256k1) to the owner address.

A contract with a ``Permission_id`` other than 0 was signed by a key of one of the owner's
permissions, which only the owner's account (``getaccount``) can tell: the signature is then
reported as unverified, not as forged (the safe reading: no accusation without proof).
Recovery is what ``tronpy.keys`` does (``Signature.recover_public_key_from_msg_hash``, then
``0x41 + keccak256(public key)[-20:]``), done with the two primitives it uses, ``coincurve``
and pycryptodome's keccak, both hard dependencies of tronpy: importing ``tronpy.keys`` runs
all of ``tronpy/__init__`` (httpx, eth_abi: 0.7 to 1.6 s measured here), which a one-order CLI
run would wait for; the two primitives import in ~30 ms, once, the first time a signature is
checked. The tests check the result against ``tronpy.keys`` itself.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from energy_async.address import to_base58, to_hex
from energy_async.errors import InvalidAddress
from energy_async.tronproto import ProtoError, read_raw_transaction

__all__ = ["Claimed", "Finding", "check", "recover_signer"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """What the node's JSON says about one delegation tx."""

    txid: str
    tx_id: str | None  # the body's txID
    raw_data_hex: str | None
    signatures: tuple[str, ...]
    contract_type: str | None
    owner: str | None  # base58
    receiver: str | None
    resource: str | None
    balance: int
    lock: bool
    lock_period: int


@dataclass(frozen=True, slots=True)
class Finding:
    authentic: bool | None  # None: not checkable (see ``reason``)
    reason: str | None = None


def check(claimed: Claimed) -> Finding:
    """The three checks in order; the first that fails is the reason."""
    if claimed.raw_data_hex is None or claimed.tx_id is None:
        return Finding(None, "the node served no raw_data_hex / txID")
    try:
        raw = bytes.fromhex(claimed.raw_data_hex)
    except ValueError:
        return Finding(False, "raw_data_hex is not hex")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != claimed.txid or claimed.tx_id.lower() != claimed.txid:
        return Finding(False, f"txID is not the sha256 of raw_data_hex ({digest})")
    try:
        decoded = read_raw_transaction(raw)
    except ProtoError as error:
        return Finding(False, f"raw_data_hex does not decode: {error}")
    mismatch = _mismatch(claimed, decoded.contract_type, decoded.delegate)
    if mismatch is not None:
        return Finding(False, f"raw_data_hex says {mismatch}, the JSON says otherwise")
    if decoded.permission_id:
        return Finding(
            None, f"signed under Permission_id {decoded.permission_id}: signer not verifiable"
        )
    return _signature(claimed)


def _mismatch(claimed: Claimed, contract_type: str | None, delegate: Any) -> str | None:
    if contract_type != claimed.contract_type:
        return f"contract type {contract_type}"
    if delegate is None:
        return "no delegation contract"
    for name, raw, shown in (
        ("owner", delegate.owner, claimed.owner),
        ("receiver", delegate.receiver, claimed.receiver),
    ):
        if shown is None or raw != _raw(shown):
            return f"{name} {_base58(raw)}"
    pairs = (
        ("resource", delegate.resource, claimed.resource),
        ("balance", delegate.balance, claimed.balance),
        ("lock", delegate.lock, claimed.lock),
        ("lock_period", delegate.lock_period, claimed.lock_period),
    )
    for name, raw_value, json_value in pairs:
        if raw_value != json_value:
            return f"{name} {raw_value}"
    return None


def _signature(claimed: Claimed) -> Finding:
    if not claimed.signatures:
        return Finding(False, "the tx carries no signature")
    try:
        signature = bytearray(bytes.fromhex(claimed.signatures[0]))
    except ValueError:
        return Finding(False, "the signature is not hex")
    if len(signature) != 65:
        return Finding(False, f"the signature is {len(signature)} bytes, not 65")
    try:
        signer = _recover_raw(bytes(signature), bytes.fromhex(claimed.txid))
    except Exception as error:  # coincurve raises ValueError or a bare Exception
        return Finding(False, f"the signature does not recover: {type(error).__name__}")
    if claimed.owner is None or signer != _raw(claimed.owner):
        return Finding(False, f"signed by {_base58(signer)}, not by the owner {claimed.owner}")
    return Finding(True)


def recover_signer(signature: bytes, digest: bytes) -> str:
    """The base58 address whose key made ``signature`` (65 bytes, r || s || v) over ``digest``.

    java-tron writes v as 27/28 (or 0/1); the recovery id is 0/1.
    """
    return to_base58(_recover_raw(signature, digest).hex())


def _recover_raw(signature: bytes, digest: bytes) -> bytes:
    """The signer's 21-byte address (0x41 + the last 20 bytes of keccak256(public key))."""
    from coincurve import PublicKey
    from Crypto.Hash import keccak

    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    public_key = PublicKey.from_signature_and_message(
        signature[:64] + bytes([v]), digest, hasher=None
    ).format(compressed=False)[1:]
    return b"\x41" + keccak.new(data=public_key, digest_bits=256).digest()[-20:]


@functools.lru_cache(maxsize=4096)
def _raw(address: str) -> bytes:
    """An address's 21 bytes (cached: a provider delegates from a few pool addresses)."""
    try:
        return bytes.fromhex(to_hex(address))
    except InvalidAddress:
        return b""


def _base58(raw: bytes) -> str | None:
    try:
        return to_base58(raw.hex())
    except InvalidAddress:
        return None
