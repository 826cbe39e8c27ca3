"""A simulated TronGrid: java-tron's HTTP servlets over the sandbox chain, with switchable faults.

Bodies follow java-tron's printer: proto field names in their own casing, zero values left out,
``{}`` for anything not found, and business errors as HTTP 200 ``{"Error": "<class> : <msg>"}``.
Address parsing copies each servlet's quirks, because clients must survive them: the servlets
that parse by hand (getaccountresource, every GET but getaccount) answer ``{}`` for a bad
base58 checksum, while the ones that go through ``JsonFormat.merge`` throw.

The facts come from tronprotocol/documentation-en (``docs/api/http/**.md``, ``openapi.yaml``):
a path the node does not serve answers HTTP 404 ``{"Error": "this API is unavailable due to
config"}`` (the spec's only 404); a GET with ``int64_as_string=true`` in its query gets every
int64 as a JSON string (``docs/api/http/index.md``: GET only, POST bodies unaffected);
``getnowblock`` reads ``visible`` from the query even on POST (its doPost calls doGet).
To add an endpoint, add one ``(path, endpoint, handler)`` line to ``build_trongrid_app``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from energy_async.sandbox.base58 import decode_address, encode_address
from energy_async.sandbox.chain import (
    TOTAL_NET_LIMIT,
    TOTAL_NET_WEIGHT,
    Chain,
    DelegationRecord,
    Transaction,
    resource_limit,
)
from energy_async.sandbox.faults import ActiveFault, Fault, ServiceControl
from energy_async.sandbox.trc20 import (
    Trc20World,
    chain_parameters_body,
    estimate_energy_body,
    trigger_constant_body,
)

__all__ = ["TRONGRID_FAULTS", "build_trongrid_app"]

TRONGRID_FAULTS = frozenset(Fault) - {Fault.RATE_LIMIT}

_NPE = "class java.lang.NullPointerException : null"
_PARSE_ERROR = "class org.tron.core.services.http.JsonFormat$ParseException : "
_HEX_ERROR = (
    "class org.bouncycastle.util.encoders.DecoderException : exception decoding Hex string: "
)
_THROTTLE_MESSAGE = (
    "The key exceeds the frequency limit(15), and the query server is suspended for 30s"
)
_LITE_NODE = "this API is closed because this node is a lite fullnode"
_BUSY = "class java.lang.IllegalAccessException : lack of computing resources"
_JSON = "application/json; charset=utf-8"
_UNAVAILABLE = "this API is unavailable due to config"
_BLOCK_VERSION = 34
_LATEST_BLOCKS_LIMIT = 100  # getblockbylatestnum serves 0 < num < 100, else {}
# Mainnet's ActiveDefaultOperations, as getaccount's example shows it.
_ACTIVE_OPERATIONS = "7fff1fc0033efb0f000000000000000000000000000000000000000000000000"
# Servlets whose doPost calls doGet: ``visible`` comes from the query string only.
_VISIBLE_FROM_QUERY = frozenset({"getnowblock", "solidity.getnowblock"})
# Written with JSON.toJSONString, not JsonFormat: int64_as_string does not apply.
_NOT_JSONFORMAT = frozenset({"getnodeinfo"})
_INT32_FIELDS = frozenset({"version", "id"})  # block version, permission id: stay numbers
_HTML_PAGE = (
    "<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
    "<hr><center>nginx</center></body></html>"
)


class _NodeError(Exception):
    """What a servlet's catch block turns into 200 ``{"Error": ...}``."""


@dataclass(frozen=True, slots=True)
class _Call:
    params: dict[str, Any]
    visible: bool
    is_post: bool
    solid: bool  # a /walletsolidity/ servlet: the latest solid block's state
    lagging: bool  # a STALE fault: the node behind the balancer is behind the chain
    int64_as_string: bool = False  # GET ?int64_as_string=true


_Body = dict[str, Any]
_Handler = Callable[[Chain, _Call], _Body]


def build_trongrid_app(chain: Chain, control: ServiceControl) -> web.Application:
    """The TronGrid app; mount it under any prefix (routes are relative)."""
    app = web.Application()

    async def dated(request: web.Request, response: web.StreamResponse) -> None:
        # A node dates its answers by its own clock (RFC 9110 Date), which is the chain's.
        response.headers["Date"] = email.utils.formatdate(chain.clock.now(), usegmt=True)

    app.on_response_prepare.append(dated)
    routes: list[tuple[str, str, _Handler]] = [
        ("/wallet/getaccountresource", "getaccountresource", _account_resource),
        ("/wallet/getaccountnet", "getaccountnet", _account_net),
        ("/wallet/getaccount", "getaccount", _account),
        ("/walletsolidity/getaccount", "solidity.getaccount", _account),
        ("/wallet/gettransactionbyid", "gettransactionbyid", _transaction),
        ("/walletsolidity/gettransactionbyid", "solidity.gettransactionbyid", _transaction),
        (
            "/wallet/gettransactionfrompending",
            "gettransactionfrompending",
            _pending_transaction,
        ),
        (
            "/wallet/gettransactionlistfrompending",
            "gettransactionlistfrompending",
            _pending_list,
        ),
        ("/wallet/gettransactioninfobyid", "gettransactioninfobyid", _transaction_info),
        (
            "/walletsolidity/gettransactioninfobyid",
            "solidity.gettransactioninfobyid",
            _transaction_info,
        ),
        ("/wallet/getdelegatedresourcev2", "getdelegatedresourcev2", _delegated_resource),
        (
            "/walletsolidity/getdelegatedresourcev2",
            "solidity.getdelegatedresourcev2",
            _delegated_resource,
        ),
        (
            "/wallet/getdelegatedresourceaccountindexv2",
            "getdelegatedresourceaccountindexv2",
            _delegation_index,
        ),
        (
            "/walletsolidity/getdelegatedresourceaccountindexv2",
            "solidity.getdelegatedresourceaccountindexv2",
            _delegation_index,
        ),
        ("/wallet/getnowblock", "getnowblock", _now_block),
        ("/walletsolidity/getnowblock", "solidity.getnowblock", _now_block),
        ("/wallet/getblock", "getblock", _block),
        ("/walletsolidity/getblock", "solidity.getblock", _block),
        ("/wallet/getblockbynum", "getblockbynum", _block_by_num),
        ("/walletsolidity/getblockbynum", "solidity.getblockbynum", _block_by_num),
        ("/wallet/getblockbyid", "getblockbyid", _block_by_id),
        ("/walletsolidity/getblockbyid", "solidity.getblockbyid", _block_by_id),
        ("/wallet/getblockbylatestnum", "getblockbylatestnum", _latest_blocks),
        ("/walletsolidity/getblockbylatestnum", "solidity.getblockbylatestnum", _latest_blocks),
        ("/wallet/getnodeinfo", "getnodeinfo", _node_info),
        # TRC20 transfers (sandbox/trc20.py)
        (
            "/wallet/triggerconstantcontract",
            "triggerconstantcontract",
            _trc20(trigger_constant_body),
        ),
        ("/wallet/estimateenergy", "estimateenergy", _trc20(estimate_energy_body)),
        ("/wallet/getchainparameters", "getchainparameters", _trc20(chain_parameters_body)),
    ]
    for path, endpoint, handler in routes:
        servlet = _servlet(chain, control, endpoint, handler)
        app.router.add_get(path, servlet, allow_head=False)
        app.router.add_post(path, servlet)
    app.router.add_route("*", "/{tail:.*}", _not_found(control))
    return app


def _servlet(
    chain: Chain, control: ServiceControl, endpoint: str, handler: _Handler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    solid = endpoint.startswith("solidity.")

    async def serve(request: web.Request) -> web.StreamResponse:
        if control.unreachable:
            return _drop(request, control, endpoint)
        fault = control.faults.draw(endpoint, TRONGRID_FAULTS)
        if fault is not None and fault.fault is Fault.LATENCY:
            await asyncio.sleep(float(fault.param("delay", 0.2)))
            fault = None
        early = _early_fault(fault)
        if early is not None:
            control.record(request.method, request.raw_path, endpoint, early.status)
            return early
        try:
            stale = fault is not None and fault.fault is Fault.STALE
            call = await _read_call(request, endpoint, solid=solid, lagging=stale)
            body = handler(chain, call)
            if call.int64_as_string and endpoint not in _NOT_JSONFORMAT:
                body = _int64_as_string(body)
        except _NodeError as error:
            body = {"Error": str(error)}
        except ConnectionResetError:
            # The client left mid-request (its deadline cut it): nobody to answer, no error.
            control.record(request.method, request.raw_path, endpoint, 0)
            raise web.HTTPBadRequest() from None
        if fault is not None and fault.fault is Fault.LOST_RESPONSE:
            return _drop(request, control, endpoint)
        response = _late_fault(fault, body)
        control.record(request.method, request.raw_path, endpoint, response.status)
        return response

    return serve


def _trc20(body: Callable[[Trc20World, dict[str, Any], bool], _Body]) -> _Handler:
    return lambda chain, call: body(chain.trc20, call.params, call.visible)


def _not_found(control: ServiceControl) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Whatever the sandbox does not serve answers as a node's disabled API does."""

    async def serve(request: web.Request) -> web.Response:
        control.record(request.method, request.raw_path, "not_found", 404)
        return _json({"Error": _UNAVAILABLE}, status=404)

    return serve


def _int64_as_string(value: Any, key: str = "") -> Any:
    """proto3 JSON with int64 as strings; int32 fields (``_INT32_FIELDS``) stay numbers."""
    if isinstance(value, dict):
        return {name: _int64_as_string(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_int64_as_string(item, key) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and key not in _INT32_FIELDS:
        return str(value)
    return value


def _drop(request: web.Request, control: ServiceControl, endpoint: str) -> web.Response:
    """Close the connection without an answer: the client sees a disconnect."""
    control.record(request.method, request.raw_path, endpoint, 0)
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=599)  # never reaches the wire


# -- faults ---------------------------------------------------------------------------------------


def _early_fault(fault: ActiveFault | None) -> web.Response | None:
    """Faults answered before the node looks at the request."""
    if fault is None:
        return None
    kind = fault.fault
    if kind in (Fault.THROTTLE_403, Fault.THROTTLE_429, Fault.THROTTLE_503):
        status = {Fault.THROTTLE_403: 403, Fault.THROTTLE_429: 429, Fault.THROTTLE_503: 503}[kind]
        body = {"Success": False, "Error": _THROTTLE_MESSAGE, "StatusCode": status}
        headers = {} if status == 403 else {"Retry-After": str(fault.param("retry_after", 1))}
        return _json(body, status=status, headers=headers)
    if kind is Fault.NODE_BUSY:
        return _json({"Error": _BUSY})
    if kind is Fault.NODE_ERROR:
        return _json({"Error": _NPE})
    if kind is Fault.NON_JSON:
        return web.Response(text=_LITE_NODE, content_type="text/plain")
    if kind is Fault.HTML_BODY:
        page = _HTML_PAGE.format(title="TronGrid")
        return web.Response(text=page, content_type="text/html")
    if kind is Fault.SERVER_ERROR:
        return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
    if kind is Fault.BAD_GATEWAY:
        page = _HTML_PAGE.format(title="502 Bad Gateway")
        return web.Response(status=502, text=page, content_type="text/html")
    if kind is Fault.HUGE_BODY:
        size = int(fault.param("size", 5 * 1024 * 1024))
        filler = b"0" * max(0, size - len(b'{"padding":""}'))
        return web.Response(body=b'{"padding":"' + filler + b'"}', headers={"Content-Type": _JSON})
    return None


def _late_fault(fault: ActiveFault | None, body: _Body) -> web.Response:
    """Faults that mangle the real answer."""
    if fault is not None and fault.fault is Fault.TRUNCATED_JSON:
        encoded = msgspec.json.encode(body)
        return web.Response(body=encoded[: len(encoded) // 2], headers={"Content-Type": _JSON})
    if fault is not None and fault.fault is Fault.WRONG_TYPES:
        return _json(_wrong_types(body))
    return _json(body)


def _wrong_types(value: Any) -> Any:
    """Numbers become strings and strings numbers: valid JSON a strict decoder must refuse."""
    if isinstance(value, dict):
        return {key: _wrong_types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wrong_types(item) for item in value]
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return len(value)
    return value


def _json(body: _Body, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(body),
        headers={"Content-Type": _JSON, **(headers or {})},
    )


# -- request parsing ------------------------------------------------------------------------------


async def _read_call(request: web.Request, endpoint: str, *, solid: bool, lagging: bool) -> _Call:
    """GET reads the query; POST reads a JSON object body (``visible`` as Boolean.parseBoolean)."""
    is_get = request.method == "GET"
    int64_as_string = is_get and request.query.get("int64_as_string", "").lower() == "true"
    if is_get or endpoint in _VISIBLE_FROM_QUERY:
        visible = request.query.get("visible", "").lower() == "true"
    if is_get:
        params: dict[str, Any] = dict(request.query)
    else:
        raw = await request.read()
        if not raw.strip():
            params = {}
        else:
            try:
                decoded = msgspec.json.decode(raw)
            except msgspec.DecodeError as error:
                raise _NodeError(f"class org.tron.json.JSONException : {error}") from None
            if not isinstance(decoded, dict):
                raise _NodeError("class org.tron.json.JSONException : not a JSON object")
            params = decoded
        if endpoint not in _VISIBLE_FROM_QUERY:
            visible = str(params.get("visible", "")).lower() == "true"
    return _Call(params, visible, not is_get, solid, lagging, int64_as_string)


def _hex_bytes(text: str) -> bytes:
    """java-tron's ByteArray.fromHexString: optional 0x, odd length padded with a leading 0."""
    if text.startswith("0x"):
        text = text[2:]
    if len(text) % 2:
        text = "0" + text
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError("invalid characters encountered in Hex string") from None


def _address(value: Any, call: _Call, *, merged: bool) -> str | None:
    """The base58 address asked for, or None when the node would find nothing (-> ``{}``).

    ``merged``: the servlet parses through JsonFormat.merge, which throws where the hand-written
    parsers quietly return nothing.
    """
    if value is None or value == "":
        return None
    text = str(value)
    if call.visible:
        try:
            raw = decode_address(text)
        except ValueError as error:
            if merged:
                raise _NodeError(f"{_PARSE_ERROR}1:1: INVALID base58 String, {error}") from None
            raise _NodeError(f"class java.lang.IllegalArgumentException : {error}") from None
        if raw is None and merged:
            raise _NodeError(_NPE)
        return None if raw is None else encode_address(raw)
    try:
        raw = _hex_bytes(text)
    except ValueError as error:
        if merged:
            raise _NodeError(f"{_PARSE_ERROR}1:1: INVALID hex String") from None
        raise _NodeError(f"{_HEX_ERROR}{error}") from None
    if len(raw) != 21 or raw[0] != 0x41:
        return None
    return encode_address(raw)


def _txid(call: _Call) -> str | None:
    value = call.params.get("value")
    if value is None or value == "":
        return None
    try:
        return _hex_bytes(str(value)).hex()
    except ValueError as error:
        if call.is_post:
            raise _NodeError(f"{_PARSE_ERROR}1:1: INVALID hex String") from None
        raise _NodeError(f"{_HEX_ERROR}{error}") from None


def _show(address: str, call: _Call) -> str:
    """An address as the printer writes it: base58 when visible, else 41-hex."""
    if call.visible:
        return address
    raw = decode_address(address)
    assert raw is not None
    return raw.hex()


# -- servlets -------------------------------------------------------------------------------------


def _account_resource(chain: Chain, call: _Call) -> _Body:
    address = _address(call.params.get("address"), call, merged=False)
    account = None if address is None else chain.account(address, solid=call.lagging)
    if account is None:
        return {}
    weight = chain.total_energy_weight  # read once: EnergyLimit and the totals must agree
    usage = chain.trc20
    body: _Body = _nonzero(freeNetUsed=usage.free_net_used(account.address))
    body.update(_nonzero(freeNetLimit=usage.free_net_limit))  # 0 left out, as any zero
    body.update(_nonzero(NetUsed=usage.net_used(account.address)))
    net_limit = resource_limit(account.bandwidth, TOTAL_NET_LIMIT, TOTAL_NET_WEIGHT)
    if net_limit:
        body["NetLimit"] = net_limit
    body["TotalNetLimit"] = TOTAL_NET_LIMIT
    body["TotalNetWeight"] = TOTAL_NET_WEIGHT
    body.update(_nonzero(EnergyUsed=usage.energy_used(account.address)))
    energy_limit = resource_limit(account.energy, chain.total_energy_limit, weight)
    if energy_limit:
        body["EnergyLimit"] = energy_limit
    body["TotalEnergyLimit"] = chain.total_energy_limit
    body["TotalEnergyWeight"] = weight
    return body


def _account_net(chain: Chain, call: _Call) -> _Body:
    """AccountNetMessage: GET parses the address by hand, POST through JsonFormat.merge."""
    address = _address(call.params.get("address"), call, merged=call.is_post)
    account = None if address is None else chain.account(address, solid=call.lagging)
    if account is None:
        return {}
    usage = chain.trc20
    body: _Body = _nonzero(freeNetUsed=usage.free_net_used(account.address))
    body.update(_nonzero(freeNetLimit=usage.free_net_limit))  # 0 left out, as any zero
    body.update(
        _nonzero(
            NetUsed=usage.net_used(account.address),
            NetLimit=resource_limit(account.bandwidth, TOTAL_NET_LIMIT, TOTAL_NET_WEIGHT),
        )
    )
    body["TotalNetLimit"] = TOTAL_NET_LIMIT
    body["TotalNetWeight"] = TOTAL_NET_WEIGHT
    return body


def _permissions(address: str, call: _Call) -> _Body:
    """The default owner and active permissions every account gets: its own key, weight 1."""
    keys = [{"address": _show(address, call), "weight": 1}]
    return {
        "owner_permission": {"permission_name": "owner", "threshold": 1, "keys": keys},
        "active_permission": [
            {
                "type": "Active",
                "id": 2,
                "permission_name": "active",
                "threshold": 1,
                "operations": _ACTIVE_OPERATIONS,
                "keys": keys,
            }
        ],
    }


def _account(chain: Chain, call: _Call) -> _Body:
    address = _address(call.params.get("address"), call, merged=True)
    solid = call.solid or call.lagging
    account = None if address is None else chain.account(address, solid=solid)
    if account is None:
        return {}
    body: _Body = {"address": _show(account.address, call)}
    if account.balance:
        body["balance"] = account.balance
    body["create_time"] = account.create_time_ms
    energy, bandwidth = account.energy, account.bandwidth
    resource = _nonzero(
        delegated_frozenV2_balance_for_energy=energy.delegated,
        acquired_delegated_frozenV2_balance_for_energy=energy.acquired,
    )
    if resource:
        body["account_resource"] = resource
    body.update(_permissions(account.address, call))
    if energy.frozen or energy.delegated or bandwidth.frozen or bandwidth.delegated:
        body["frozenV2"] = [
            _nonzero(amount=bandwidth.frozen),  # BANDWIDTH is the enum default: no "type"
            {"type": "ENERGY", **_nonzero(amount=energy.frozen)},
            {"type": "TRON_POWER"},
        ]
    body.update(
        _nonzero(
            delegated_frozenV2_balance_for_bandwidth=bandwidth.delegated,
            acquired_delegated_frozenV2_balance_for_bandwidth=bandwidth.acquired,
        )
    )
    return body


def _transaction(chain: Chain, call: _Call) -> _Body:
    """Wallet.getTransactionById reads the transaction store: only what is in a block."""
    txid = _txid(call)
    if txid is None or call.lagging:
        return {}
    state = chain.tx_state(txid)
    tx = chain.transaction(txid)
    if tx is None or state not in (("solid",) if call.solid else ("included", "solid")):
        return {}
    return _transaction_json(tx, call)


def _pending_transaction(chain: Chain, call: _Call) -> _Body:
    """The pending pool's copy; no ``ret``, as the docs' example shows (nothing ran yet)."""
    txid = _txid(call)
    if txid is None or call.lagging or chain.tx_state(txid) != "pending":
        return {}
    tx = chain.transaction(txid)
    if tx is None:
        return {}
    body = _transaction_json(tx, call)
    del body["ret"]
    return body


def _pending_list(chain: Chain, call: _Call) -> _Body:
    txids = [] if call.lagging else chain.pending_txids()
    return {"txId": txids} if txids else {}


def _transaction_json(tx: Transaction, call: _Call) -> _Body:
    value: _Body = {"owner_address": _show(tx.owner, call)}
    if tx.resource != "BANDWIDTH":
        value["resource"] = tx.resource
    value["balance"] = tx.balance
    value["receiver_address"] = _show(tx.receiver, call)
    value.update(_nonzero(lock=tx.lock, lock_period=tx.lock_period))
    contract = {
        "parameter": {"value": value, "type_url": tx.type_url},
        "type": tx.contract_type,
    }
    return {
        "ret": [{"contractRet": "SUCCESS"}],
        "signature": [tx.signature.hex()],
        "txID": tx.txid,
        "raw_data": {
            "contract": [contract],
            "ref_block_bytes": tx.ref_block_bytes.hex(),
            "ref_block_hash": tx.ref_block_hash.hex(),
            "expiration": tx.expiration_ms,
            "timestamp": tx.timestamp_ms,
        },
        "raw_data_hex": tx.raw_data().hex(),
    }


def _transaction_info(chain: Chain, call: _Call) -> _Body:
    txid = _txid(call)
    if txid is None or call.lagging:
        return {}
    state = chain.tx_state(txid)
    tx = chain.transaction(txid)
    block = chain.tx_block(txid)
    if tx is None or block is None or (call.solid and state != "solid"):
        return {}
    return {
        "id": txid,
        "blockNumber": block,
        "blockTimeStamp": chain.block_timestamp_ms(block),
        "contractResult": [""],
        "receipt": {"net_usage": tx.net_usage},
    }


def _delegated_resource(chain: Chain, call: _Call) -> _Body:
    owner = _address(call.params.get("fromAddress"), call, merged=call.is_post)
    receiver = _address(call.params.get("toAddress"), call, merged=call.is_post)
    if owner is None or receiver is None or call.lagging:
        return {}
    records = chain.delegation_records(owner, receiver, solid=call.solid)
    if not records:
        return {}
    return {"delegatedResource": [_record_json(record, call) for record in records]}


def _record_json(record: DelegationRecord, call: _Call) -> _Body:
    return {
        "from": _show(record.owner, call),
        "to": _show(record.receiver, call),
        **_nonzero(
            frozen_balance_for_bandwidth=record.bandwidth,
            frozen_balance_for_energy=record.energy,
            expire_time_for_bandwidth=record.expire_bandwidth_ms,
            expire_time_for_energy=record.expire_energy_ms,
        ),
    }


def _delegation_index(chain: Chain, call: _Call) -> _Body:
    """A base58 ``value`` is turned into hex by hand on GET and POST alike (Util.getHexAddress),
    so a bad checksum finds nothing (``{}``); only POST hex goes through JsonFormat.merge."""
    address = _address(call.params.get("value"), call, merged=call.is_post and not call.visible)
    if address is None or call.lagging:
        return {}
    from_accounts, to_accounts = chain.delegation_index(address)
    body: _Body = {"account": _show(address, call)}
    if from_accounts:
        body["fromAccounts"] = [_show(item, call) for item in from_accounts]
    if to_accounts:
        body["toAccounts"] = [_show(item, call) for item in to_accounts]
    return body


def _top(chain: Chain, call: _Call) -> int:
    """The newest block this servlet can see: the solid one, or the head."""
    return chain.solid_head() if call.solid or call.lagging else chain.head()


def _now_block(chain: Chain, call: _Call) -> _Body:
    return _block_json(chain, _top(chain, call), call)


def _block_by_num(chain: Chain, call: _Call) -> _Body:
    number = _number(call.params.get("num"), call)
    return _block_json(chain, number, call) if 0 <= number <= _top(chain, call) else {}


def _block_by_id(chain: Chain, call: _Call) -> _Body:
    block_id = _txid(call)
    number = _number_of_block_id(chain, block_id, _top(chain, call))
    return {} if number is None else _block_json(chain, number, call)


def _latest_blocks(chain: Chain, call: _Call) -> _Body:
    """The newest ``num`` blocks, newest first, as the docs' example lists them."""
    count = _number(call.params.get("num"), call)
    if not 0 < count < _LATEST_BLOCKS_LIMIT:
        return {}
    top = _top(chain, call)
    numbers = range(top, max(-1, top - count), -1)
    return {"block": [_block_json(chain, number, call) for number in numbers]}


def _block(chain: Chain, call: _Call) -> _Body:
    """getblock: ``id_or_num`` a decimal number or a block id; ``detail`` adds transactions."""
    text = str(call.params.get("id_or_num", "") or "")
    detail = str(call.params.get("detail", "")).lower() == "true"
    top = _top(chain, call)
    if not text:
        number: int | None = top
    elif text.lstrip("-").isdigit():
        number = int(text)
        if number < 0:
            raise _NodeError("num must be non-positive number.")  # sic, the servlet's text
        number = number if number <= top else None
    elif len(text) == 64:
        try:
            block_id = bytes.fromhex(text).hex()
        except ValueError:
            raise _NodeError("id must be legal block hash.") from None
        number = _number_of_block_id(chain, block_id, top)
    else:
        raise _NodeError("id must be legal block hash.")
    if number is None:
        return {}
    return _block_json(chain, number, call, transactions=detail)


def _number(value: Any, call: _Call) -> int:
    """An int64 parameter: GET parses with Long.parseLong, POST through JsonFormat.merge."""
    if value is None or value == "":
        return 0  # proto3 default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _NodeError(f"{_PARSE_ERROR}1:1: Expected a number, got {value!r}")
    try:
        return int(value)
    except ValueError:
        if call.is_post:
            raise _NodeError(f"{_PARSE_ERROR}1:1: Expected a number, got {value!r}") from None
        raise _NodeError(
            f'class java.lang.NumberFormatException : For input string: "{value}"'
        ) from None


def _number_of_block_id(chain: Chain, block_id: str | None, top: int) -> int | None:
    """The block whose id this is, if the node has it (its number is in the first 8 bytes)."""
    if block_id is None or len(block_id) != 64:
        return None
    number = int(block_id[:16], 16)
    if number > top or chain.block_id(number) != block_id:
        return None
    return number


def _block_json(chain: Chain, number: int, call: _Call, *, transactions: bool = True) -> _Body:
    """protocol.Block as printBlockToJSON writes it.

    The witness is one of 27 real keys, and ``witness_signature`` is its recoverable signature
    over the hash the block id is cut from (the sandbox builds no header bytes, so that hash is
    made up, and ``txTrieRoot`` is not a Merkle root).
    """
    block_hash = chain.block_hash(number)
    witness = chain.witness_key(number)
    signature = witness.sign(block_hash)
    raw_data: _Body = {
        **_nonzero(number=number),
        "txTrieRoot": hashlib.sha256(f"txroot:{chain.seed}:{number}".encode()).hexdigest(),
        "witness_address": _show(witness.address, call),
        "parentHash": chain.block_id(number - 1) if number else "00" * 32,
        "version": _BLOCK_VERSION,
        **_nonzero(timestamp=chain.block_timestamp_ms(number)),
    }
    body: _Body = {
        "blockID": chain.block_id(number),
        "block_header": {
            "raw_data": raw_data,
            "witness_signature": (signature[:64] + bytes([signature[64] + 27])).hex(),
        },
    }
    txs = [chain.transaction(txid) for txid in chain.block_txids(number)] if transactions else []
    if txs:  # an empty repeated field is not printed
        body["transactions"] = [_transaction_json(tx, call) for tx in txs if tx is not None]
    return body


def _node_info(chain: Chain, call: _Call) -> _Body:
    """NodeInfo through JSON.toJSONString (no JsonFormat: ``visible`` has no effect).

    ``configNodeInfo`` and ``machineInfo`` carry the values of the docs' example (a Nile node).
    """
    head, solid = chain.head(), chain.solid_head()
    return {
        "activeConnectCount": 3,
        "beginSyncNum": head,
        "block": f"Num:{head},ID:{chain.block_id(head)}",
        "solidityBlock": f"Num:{solid},ID:{chain.block_id(solid)}",
        "currentConnectCount": 60,
        "passiveConnectCount": 57,
        "totalFlow": 0,
        "configNodeInfo": {
            "codeVersion": "4.8.1",
            "versionNum": "18636",
            "p2pVersion": "201910292",
            "listenPort": 18888,
            "discoverEnable": True,
            "maxConnectCount": 60,
            "supportConstant": True,
            "dbVersion": 2,
        },
        "machineInfo": {
            "cpuCount": 16,
            "cpuRate": 0.06666666666666667,
            "totalMemory": 32726257664,
            "freeMemory": 232448000,
            "jvmTotalMemory": 18683133952,
            "jvmFreeMemory": 7802853696,
            "javaVersion": "1.8.0_291",
            "osName": "Linux 3.10.0-1160.49.1.el7.x86_64",
            "threadCount": 361,
            "deadLockThreadCount": 0,
        },
    }


def _nonzero(**fields: int) -> _Body:
    """proto3 printing: default values are not written."""
    return {name: value for name, value in fields.items() if value}
