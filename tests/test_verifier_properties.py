"""Whatever TronGrid sends, the verifier answers with a result or a typed error, never a crash."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_async.errors import EnergyError
from energy_async.models import DelegatedResource, DelegationTx, ResourceSnapshot
from energy_async.verifier import (
    _ACCOUNT_RESOURCE,
    _DELEGATED_RESOURCES,
    _TRANSACTION,
    _TRANSACTION_INFO,
    _delegated_from,
    _delegation_from,
    _interpret,
    _snapshot_from,
)

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
OWNER = "TJAVcszse667FmSNCwU2fm6DmfM5D4AyDh"
TXID = "ab" * 32

FIELDS = [
    "EnergyLimit",
    "EnergyUsed",
    "TotalEnergyLimit",
    "TotalEnergyWeight",
    "Error",
    "txID",
    "raw_data",
    "contract",
    "parameter",
    "value",
    "type",
    "ret",
    "contractRet",
    "owner_address",
    "receiver_address",
    "resource",
    "balance",
    "lock",
    "lock_period",
    "id",
    "blockNumber",
    "blockTimeStamp",
    "result",
    "resMessage",
    "delegatedResource",
    "from",
    "to",
    "frozen_balance_for_energy",
    "expire_time_for_energy",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from([TARGET, OWNER, TXID, "DelegateResourceContract", "FAILED", "SUCCESS"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=6),
    ),
    max_leaves=30,
)
longs = st.integers(min_value=0, max_value=2**63 - 1)
amounts = st.one_of(longs, longs, longs, st.integers(min_value=-3, max_value=2**64), scalars)
account_like = st.fixed_dictionaries(
    {"TotalEnergyLimit": amounts, "TotalEnergyWeight": amounts},
    optional={"EnergyLimit": amounts, "EnergyUsed": amounts, "Error": scalars, "x": json_values},
)
statuses = st.sampled_from([200, 200, 200, 302, 403, 404, 413, 429, 500, 503])


def body_of(value: Any) -> bytes:
    return msgspec.json.encode(value)


@settings(max_examples=300)
@given(st.one_of(json_values, account_like), statuses)
def test_any_json_is_a_snapshot_or_typed_error(value: Any, status: int) -> None:
    content = body_of(value)
    path = "/wallet/getaccountresource"
    try:
        reply = _interpret(path, status, content, None, _ACCOUNT_RESOURCE)
        snap = _snapshot_from(TARGET, reply, content, path)
    except EnergyError:
        return
    assert isinstance(snap, ResourceSnapshot)
    assert min(snap.energy_limit, snap.energy_used, snap.energy_available) >= 0
    if snap.exists:  # only with both network totals, which are never zero
        assert value["TotalEnergyWeight"] == snap.total_energy_weight > 0
        assert value["TotalEnergyLimit"] == snap.total_energy_limit > 0
    else:
        assert value == {} and status == 200


@settings(max_examples=150)
@given(json_values, json_values, st.booleans())
def test_any_json_is_a_delegation_or_typed_error(
    tx_value: Any, info_value: Any, solid: bool
) -> None:
    try:
        tx = _interpret("/t", 200, body_of(tx_value), None, _TRANSACTION)
        info = _interpret("/i", 200, body_of(info_value), None, _TRANSACTION_INFO)
        result = _delegation_from(TXID, tx, info, solid)
    except EnergyError:
        return
    assert isinstance(result, DelegationTx) and result.balance_sun >= 0


@settings(max_examples=150)
@given(json_values)
def test_any_json_is_a_delegated_resource_or_typed_error(value: Any) -> None:
    path = "/wallet/getdelegatedresourcev2"
    try:
        reply = _interpret(path, 200, body_of(value), None, _DELEGATED_RESOURCES)
        result = _delegated_from(OWNER, TARGET, reply, path)
    except EnergyError:
        return
    assert isinstance(result, DelegatedResource) and result.energy_sun >= 0


@given(st.binary(max_size=200), statuses)
def test_any_bytes_are_a_snapshot_or_typed_error(content: bytes, status: int) -> None:
    path = "/wallet/getaccountresource"
    try:
        reply = _interpret(path, status, content, None, _ACCOUNT_RESOURCE)
        snap = _snapshot_from(TARGET, reply, content, path)
    except EnergyError:
        return
    assert isinstance(snap, ResourceSnapshot) and status == 200
