"""The protobuf reader and the authenticity check, on vectors made here with tronpy.keys.

The encoder below is written from java-tron's protos (Tron.proto ``Transaction.raw``,
balance_contract.proto ``DelegateResourceContract``), independently of the reader.
"""

from __future__ import annotations

import hashlib

import pytest
from tronpy.keys import PrivateKey

from energy_async.address import to_base58
from energy_async.authenticity import Claimed, check, recover_signer
from energy_async.tronproto import ProtoError, read_raw_transaction

RECEIVER = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
KEY = PrivateKey(bytes(range(1, 33)))
OWNER = KEY.public_key.to_base58check_address()
STRANGER = PrivateKey(bytes(range(2, 34)))


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pb_int(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value) if value else b""


def pb_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def raw_address(base58: str) -> bytes:
    from energy_async.address import to_hex

    return bytes.fromhex(to_hex(base58))


def delegate_raw(
    *,
    owner: str = OWNER,
    receiver: str = RECEIVER,
    resource: int = 1,
    balance: int = 6_851_000_000,
    lock: bool = False,
    lock_period: int = 0,
    contract_type: int = 57,
    permission_id: int = 0,
    extra: bytes = b"",
) -> bytes:
    value = (
        pb_bytes(1, raw_address(owner))
        + pb_int(2, resource)
        + pb_int(3, balance)
        + pb_bytes(4, raw_address(receiver))
        + pb_int(5, int(lock))
        + pb_int(6, lock_period)
    )
    name = "DelegateResourceContract" if contract_type == 57 else "UnDelegateResourceContract"
    parameter = pb_bytes(1, f"type.googleapis.com/protocol.{name}".encode()) + pb_bytes(2, value)
    contract = pb_int(1, contract_type) + pb_bytes(2, parameter) + pb_int(5, permission_id)
    return (
        pb_bytes(1, b"\x12\x34")
        + pb_bytes(4, bytes(8))
        + pb_int(8, 1_700_000_060_000)
        + pb_bytes(11, contract)
        + extra
        + pb_int(14, 1_700_000_000_000)
    )


def claimed(raw: bytes, *, signer: PrivateKey = KEY, v_offset: int = 27, **json: object) -> Claimed:
    txid = hashlib.sha256(raw).hexdigest()
    signature = bytearray(signer.sign_msg_hash(bytes.fromhex(txid)).to_bytes())
    signature[64] += v_offset
    fields: dict[str, object] = {
        "txid": txid,
        "tx_id": txid,
        "raw_data_hex": raw.hex(),
        "signatures": (bytes(signature).hex(),),
        "contract_type": "DelegateResourceContract",
        "owner": OWNER,
        "receiver": RECEIVER,
        "resource": "ENERGY",
        "balance": 6_851_000_000,
        "lock": False,
        "lock_period": 0,
    }
    fields.update(json)
    return Claimed(**fields)  # type: ignore[arg-type]


# --- the reader ------------------------------------------------------------------------------


def test_reader_decodes_a_delegation_with_every_field() -> None:
    raw = delegate_raw(lock=True, lock_period=1200, permission_id=2)
    decoded = read_raw_transaction(raw)
    assert decoded.contract_type == "DelegateResourceContract"
    assert decoded.type_url == "type.googleapis.com/protocol.DelegateResourceContract"
    assert decoded.permission_id == 2
    assert decoded.timestamp_ms == 1_700_000_000_000
    assert decoded.expiration_ms == 1_700_000_060_000
    fields = decoded.delegate
    assert fields is not None
    assert to_base58(fields.owner.hex()) == OWNER and to_base58(fields.receiver.hex()) == RECEIVER
    assert (fields.resource, fields.balance, fields.lock, fields.lock_period) == (
        "ENERGY",
        6_851_000_000,
        True,
        1200,
    )


@pytest.mark.parametrize(
    ("raw", "resource", "contract_type"),
    [
        (delegate_raw(resource=0), "BANDWIDTH", "DelegateResourceContract"),  # 0 is omitted
        (delegate_raw(contract_type=58), "ENERGY", "UnDelegateResourceContract"),
        (delegate_raw(extra=pb_bytes(10, b"memo") + pb_int(18, 7)), "ENERGY", None),
    ],
    ids=["bandwidth-omitted", "undelegate", "unknown-fields-skipped"],
)
def test_reader_table(raw: bytes, resource: str, contract_type: str | None) -> None:
    decoded = read_raw_transaction(raw)
    assert decoded.delegate is not None and decoded.delegate.resource == resource
    assert decoded.contract_type == (contract_type or "DelegateResourceContract")


def test_reader_reads_a_transfer_as_no_delegation() -> None:
    contract = pb_int(1, 1) + pb_bytes(2, pb_bytes(1, b"type.googleapis.com/x"))
    decoded = read_raw_transaction(pb_bytes(11, contract))
    assert decoded.contract_type is None and decoded.delegate is None


@pytest.mark.parametrize(
    "raw",
    [
        b"\x5a\x10\x08",  # contract length runs past the end
        b"\x08",  # a varint with nothing after the key
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a varint longer than 10 bytes
        b"\x0b",  # wire type 3 (groups) is not supported
        b"\x00\x00",  # field number 0
        pb_bytes(11, pb_int(1, 57) + pb_bytes(2, pb_bytes(2, pb_int(2, 9)))),  # ResourceCode 9
    ],
    ids=["overrun", "truncated-varint", "long-varint", "group", "field-0", "bad-resource"],
)
def test_reader_rejects_malformed_bytes(raw: bytes) -> None:
    with pytest.raises(ProtoError):
        read_raw_transaction(raw)


# --- authenticity ------------------------------------------------------------------------------


def test_recovery_agrees_with_tronpy_keys() -> None:
    digest = hashlib.sha256(b"vector").digest()
    signature = KEY.sign_msg_hash(digest)
    expected = signature.recover_public_key_from_msg_hash(digest).to_base58check_address()
    assert recover_signer(signature.to_bytes(), digest) == expected == OWNER
    as_tron = signature.to_bytes()[:64] + bytes([signature.to_bytes()[64] + 27])
    assert recover_signer(as_tron, digest) == OWNER


def test_an_authentic_delegation_passes() -> None:
    found = check(claimed(delegate_raw()))
    assert found.authentic is True and found.reason is None
    assert check(claimed(delegate_raw(), v_offset=0)).authentic is True  # v as 0/1


RAW = delegate_raw()
TXID = hashlib.sha256(RAW).hexdigest()


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (claimed(RAW, txid="f" * 64), "not the sha256"),
        (claimed(RAW, tx_id="f" * 64), "not the sha256"),
        (claimed(RAW, balance=7_000_000_000), "balance 6851000000"),
        (claimed(RAW, receiver=OWNER), "receiver"),
        (claimed(RAW, owner=RECEIVER), "owner"),
        (claimed(RAW, resource="BANDWIDTH"), "resource ENERGY"),
        (claimed(RAW, lock=True), "lock False"),
        (claimed(RAW, contract_type="UnDelegateResourceContract"), "contract type"),
        (claimed(RAW, signer=STRANGER), "not by the owner"),
        (claimed(RAW, signatures=()), "no signature"),
        (claimed(RAW, signatures=("00" * 64,)), "not 65"),
        (claimed(RAW, raw_data_hex="zz"), "not hex"),
        (claimed(b"\x5a\x10\x08"), "does not decode"),
    ],
    ids=[
        "txid-asked",
        "txid-body",
        "balance",
        "receiver",
        "owner",
        "resource",
        "lock",
        "type",
        "signer",
        "unsigned",
        "short-signature",
        "not-hex",
        "garbled",
    ],
)
def test_a_tx_that_is_not_what_the_node_says_fails(case: Claimed, reason: str) -> None:
    found = check(case)
    assert found.authentic is False
    assert found.reason is not None and reason in found.reason, found.reason


def test_what_cannot_be_checked_is_not_called_forged() -> None:
    assert check(claimed(RAW, raw_data_hex=None)).authentic is None
    permissioned = check(claimed(delegate_raw(permission_id=2), signer=STRANGER))
    assert permissioned.authentic is None
    assert permissioned.reason is not None and "Permission_id 2" in permissioned.reason
