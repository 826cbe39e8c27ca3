"""The sandbox's own signer against tronpy's, an implementation no one here wrote."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from tronpy.keys import PrivateKey, Signature

from energy_async.sandbox.keys import SigningKey

SECRETS = [hashlib.sha256(f"key-{n}".encode()).digest() for n in range(20)]


@pytest.mark.parametrize("secret", SECRETS)
def test_same_address_and_same_signature_bytes_as_tronpy(secret: bytes) -> None:
    ours, theirs = SigningKey(secret), PrivateKey(secret)
    assert ours.address == theirs.public_key.to_base58check_address()
    assert ours.hex() == theirs.hex()
    digest = hashlib.sha256(secret).digest()
    signed = ours.sign(digest)
    assert signed == theirs.sign_msg_hash(digest).to_bytes()  # RFC 6979: deterministic
    recovered = Signature(signed).recover_public_key_from_msg_hash(digest)
    assert recovered.to_base58check_address() == ours.address


@pytest.mark.parametrize(
    "secret",
    [
        bytes(32),  # zero
        bytes.fromhex("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"),  # n
        b"\xff" * 32,
        b"\x01" * 31,
    ],
)
def test_a_secret_that_is_no_key_is_refused(secret: bytes) -> None:
    with pytest.raises(ValueError):
        SigningKey(secret)


def test_only_a_32_byte_hash_is_signed_and_the_key_is_never_shown() -> None:
    key = SigningKey(SECRETS[0])
    with pytest.raises(ValueError):
        key.sign(b"not a hash")
    assert key.hex() not in repr(key) and key.address in repr(key)


def test_the_sandbox_never_loads_tronpy() -> None:
    code = (
        "import sys; from energy_async.sandbox import Sandbox;"
        "s = Sandbox(seed=1, speed=0); p = s.chain.new_account(energy_stake_sun=10**12);"
        "tx = s.chain.transaction(s.chain.delegate(p, s.new_target(), 10**9));"
        "assert tx is not None and len(tx.signature) == 65;"
        "assert s.chain.witness_key(5).sign(bytes(32));"
        "assert 'tronpy' not in sys.modules, sorted(m for m in sys.modules if 'tronpy' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
