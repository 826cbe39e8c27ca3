"""A minimal protobuf reader for the bytes a txID is the hash of (``raw_data_hex``).

Only what authenticity needs: ``Transaction.raw`` and the delegation contracts in it, read from
java-tron's protos (``protocol/src/main/protos/core/Tron.proto`` ``Transaction.raw`` and
``Transaction.Contract``; ``core/contract/balance_contract.proto``
``DelegateResourceContract`` / ``UnDelegateResourceContract``). Unknown fields are skipped, as
protobuf readers do; malformed bytes raise :class:`ProtoError`. Pure functions, no I/O.

Field numbers used::

    Transaction.raw: 1 ref_block_bytes, 3 ref_block_num, 4 ref_block_hash, 8 expiration,
                     11 contract (repeated), 14 timestamp
    Contract:        1 type (enum ContractType), 2 parameter (google.protobuf.Any), 5 Permission_id
    Any:             1 type_url, 2 value
    Delegate/UnDelegateResourceContract:
                     1 owner_address, 2 resource, 3 balance, 4 receiver_address,
                     5 lock, 6 lock_period (Delegate only)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONTRACT_TYPES",
    "RESOURCE_CODES",
    "DelegateFields",
    "ProtoError",
    "RawTransaction",
    "read_raw_transaction",
]

# ContractType enum values (Tron.proto) for the contracts a delivery check meets.
CONTRACT_TYPES = {57: "DelegateResourceContract", 58: "UnDelegateResourceContract"}
RESOURCE_CODES = {0: "BANDWIDTH", 1: "ENERGY", 2: "TRON_POWER"}

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class ProtoError(ValueError):
    """Bytes that are not a well-formed protobuf message of the expected shape."""


@dataclass(frozen=True, slots=True)
class DelegateFields:
    """A (Un)DelegateResourceContract as encoded; addresses are 21 raw bytes (0x41 + 20)."""

    owner: bytes
    receiver: bytes
    resource: str  # ResourceCode 0 is omitted on the wire: BANDWIDTH
    balance: int
    lock: bool
    lock_period: int


@dataclass(frozen=True, slots=True)
class RawTransaction:
    """The parts of ``Transaction.raw`` a delivery check compares with the JSON."""

    contract_type: str | None  # None: no contract, or one this reader does not decode
    type_url: str | None
    permission_id: int
    delegate: DelegateFields | None
    timestamp_ms: int
    expiration_ms: int


def read_raw_transaction(raw: bytes) -> RawTransaction:
    """Decode ``Transaction.raw``; only its first contract is read (java-tron allows one)."""
    contract: bytes | None = None
    timestamp = expiration = 0
    for number, wire, value in _fields(raw):
        if number == 11 and wire == _LEN and contract is None:
            contract = _as_bytes(value)
        elif number == 14 and wire == _VARINT:
            timestamp = _as_int(value)
        elif number == 8 and wire == _VARINT:
            expiration = _as_int(value)
    if contract is None:
        return RawTransaction(None, None, 0, None, timestamp, expiration)
    type_code = 0
    parameter = b""
    permission_id = 0
    for number, wire, value in _fields(contract):
        if number == 1 and wire == _VARINT:
            type_code = _as_int(value)
        elif number == 2 and wire == _LEN:
            parameter = _as_bytes(value)
        elif number == 5 and wire == _VARINT:
            permission_id = _as_int(value)
    type_url: str | None = None
    payload = b""
    for number, wire, value in _fields(parameter):
        if number == 1 and wire == _LEN:
            try:
                type_url = _as_bytes(value).decode()
            except UnicodeDecodeError:
                raise ProtoError("type_url is not UTF-8") from None
        elif number == 2 and wire == _LEN:
            payload = _as_bytes(value)
    contract_type = CONTRACT_TYPES.get(type_code)
    delegate = _read_delegate(payload) if contract_type is not None else None
    return RawTransaction(contract_type, type_url, permission_id, delegate, timestamp, expiration)


def _read_delegate(payload: bytes) -> DelegateFields:
    owner = receiver = b""
    resource = balance = lock_period = 0
    lock = False
    for number, wire, value in _fields(payload):
        if number == 1 and wire == _LEN:
            owner = _as_bytes(value)
        elif number == 2 and wire == _VARINT:
            resource = _as_int(value)
        elif number == 3 and wire == _VARINT:
            balance = _signed64(_as_int(value))
        elif number == 4 and wire == _LEN:
            receiver = _as_bytes(value)
        elif number == 5 and wire == _VARINT:
            lock = _as_int(value) != 0
        elif number == 6 and wire == _VARINT:
            lock_period = _signed64(_as_int(value))
    if resource not in RESOURCE_CODES:
        raise ProtoError(f"unknown ResourceCode {resource}")
    return DelegateFields(owner, receiver, RESOURCE_CODES[resource], balance, lock, lock_period)


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """Every (field number, wire type, value) of one message, in order."""
    out: list[tuple[int, int, int | bytes]] = []
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtoError("field number 0")
        if wire == _VARINT:
            value, position = _varint(data, position)
            out.append((number, wire, value))
        elif wire == _LEN:
            length, position = _varint(data, position)
            if position + length > end:
                raise ProtoError("a length-delimited field runs past the end")
            out.append((number, wire, data[position : position + length]))
            position += length
        elif wire in (_I64, _I32):
            size = 8 if wire == _I64 else 4
            if position + size > end:
                raise ProtoError("a fixed-size field runs past the end")
            out.append((number, wire, int.from_bytes(data[position : position + size], "little")))
            position += size
        else:
            raise ProtoError(f"unsupported wire type {wire}")
    return out


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ProtoError("a varint runs past the end")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise ProtoError("a varint longer than 10 bytes")


def _signed64(value: int) -> int:
    """int64 on the wire is two's complement in 64 bits."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _as_int(value: int | bytes) -> int:
    assert isinstance(value, int)
    return value


def _as_bytes(value: int | bytes) -> bytes:
    assert isinstance(value, bytes)
    return value
