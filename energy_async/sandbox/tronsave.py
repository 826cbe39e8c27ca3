"""TronSave v2's API as peers.md section 2.1 describes it (tronsave-docs-en ``developers/``).

Mounted at the host root of its prefix: ``POST /v2/buy-resource`` (JSON ``{resourceType,
resourceAmount, receiver, durationSec, unitPrice?, options?}`` -> 201 ``{"error": false,
"message": "Success", "data": {"orderId"}}``), ``GET /v2/order/:id``, ``POST
/v2/order-book/estimate-buy-resource``, ``GET /v2/user-info``, and the order history ``GET
/v2/orders?page=&pageSize=&status=`` (``order-history.md``: newest first, ``data.{data[],
total}``). The key goes in ``apikey``;
nothing is signed. There is no idempotency key: **every accepted POST charges** (charges are
booked without a client id). Errors: ``{"error": true, "message": "TSAS:<n> <CODE>", "data":
null}``, schema errors in Fastify's shape with HTTP 400.

An order's ``delegates[]`` lists one entry per delegation (two for a split fill);
``fulfilledPercent`` and ``remainAmount`` follow what was delegated and seen in a block (a
PARTIAL delivery fills half and says so; a broadcast that never lands fills nothing). Sandbox
assumptions, documented nowhere: the unknown-order answer (404 with ``ORDER_NOT_FOUND``),
prices below (sun per energy per day, at least one day's worth), that receivers must be
activated, and ``createdAt`` (Unix seconds) on history entries: the
whitelisted ``/v2/internal/buyer/orders`` documents it (``list-orders.md``), ``/v2/orders`` does
not show it in its example.
"""

from __future__ import annotations

import hmac
import math
from typing import Any

import msgspec
from aiohttp import web

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.pools import SplitSim
from energy_async.sandbox.provider_core import ProviderSim, Refusal, SimOrder
from energy_async.sandbox.provider_face import Face, build_face_app, json_response
from energy_async.sandbox.provider_http import SIM, Invalid, check_quantity

__all__ = [
    "DAY_PRICE_SUN",
    "TRONSAVE_API_KEY",
    "build_tronsave_app",
    "tronsave_sim",
]

TRONSAVE_API_KEY = "sandbox-tronsave-key"
# When each order was accepted, on the provider's clock (the one its ``Date`` header shows).
_ACCEPTED = web.AppKey("accepted", dict[str, float])
DAY_PRICE_SUN = 30  # per unit of energy per day, at least a day's worth
MAX_DURATION_SEC = 30 * 86_400
_ERRORS = {
    Refusal.INSUFFICIENT_BALANCE: (400, "TSAS:302 INTERNAL_BALANCE_ACCOUNT_TOO_LOW"),
    Refusal.ORDER_NOT_FOUND: (404, "TSAS:404 ORDER_NOT_FOUND"),
    Refusal.INVALID_ADDRESS: (400, "TSAS:102 INVALID_PARAMS receiver"),
    Refusal.ADDRESS_NOT_ACTIVATED: (400, "TSAS:102 INVALID_PARAMS receiver is not activated"),
}


def tronsave_sim(chain: Chain, *, seed: int = 0) -> SplitSim:
    return SplitSim(
        chain,
        name="tronsave",
        api_key=TRONSAVE_API_KEY,
        api_secret="",
        paid_status="NEW",
        activation_sun=0,
        seed=seed,
    )


class _TronSaveFace:
    def __init__(self, sim: ProviderSim) -> None:
        self._sim = sim

    def refusal(self, refusal: Refusal, detail: str) -> web.Response:
        if refusal in _ERRORS:
            status, message = _ERRORS[refusal]
            return json_response(status, {"error": True, "message": message, "data": None})
        body = {
            "statusCode": 400,
            "code": "FST_ERR_VALIDATION",
            "error": "Bad Request",
            "message": detail or refusal.message,
        }
        return json_response(400, body)

    def not_found(self, request: web.Request) -> web.Response:
        body = {"message": f"Route {request.method}:{request.path} not found", "statusCode": 404}
        return json_response(404, {"error": "Not Found", **body})

    def authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        given = request.headers.get("apikey")
        if not given:
            return json_response(401, {"error": True, "message": "TSAS:106 API_KEY_REQUIRED"})
        if not hmac.compare_digest(given.encode(), self._sim.api_key.encode()):
            return json_response(401, {"error": True, "message": "TSAS:107 INVALID_API_KEY"})
        return None


def build_tronsave_app(sim: ProviderSim) -> web.Application:
    face: Face = _TronSaveFace(sim)
    app = build_face_app(
        sim,
        face,
        [
            ("POST", "/v2/buy-resource", _create, "create"),
            ("GET", "/v2/order/{id}", _get, "get"),
            ("POST", "/v2/order-book/estimate-buy-resource", _estimate, "estimate"),
            ("GET", "/v2/user-info", _user_info, "account"),
            ("GET", "/v2/orders", _history, "list"),
        ],
    )
    app[_ACCEPTED] = {}
    return app


def _cost(amount: int, seconds: int) -> int:
    return amount * DAY_PRICE_SUN * max(1, math.ceil(seconds / 86_400))


async def _fields(request: web.Request) -> dict[str, Any]:
    try:
        fields = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Invalid(Refusal.INVALID_PARAMETER, "body must be JSON") from None
    if not isinstance(fields, dict):
        raise Invalid(Refusal.INVALID_PARAMETER, "body must be object")
    if fields.get("resourceType", "ENERGY") != "ENERGY":
        raise Invalid(Refusal.INVALID_PARAMETER, "body/resourceType must be ENERGY here")
    amount = fields.get("resourceAmount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise Invalid(
            Refusal.INVALID_PARAMETER, "body must have required property 'resourceAmount'"
        )
    check_quantity(amount)
    seconds = fields.get("durationSec", 259_200)
    if not isinstance(seconds, int) or not 3600 <= seconds <= MAX_DURATION_SEC:
        raise Invalid(Refusal.INVALID_PARAMETER, "body/durationSec must be 3600..2592000")
    return fields


async def _create(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    assert isinstance(sim, SplitSim)
    fields = await _fields(request)
    receiver = fields.get("receiver")
    if not isinstance(receiver, str):
        raise Invalid(Refusal.INVALID_PARAMETER, "body must have required property 'receiver'")
    if not sim.chain.is_valid_address(receiver):
        raise Invalid(Refusal.INVALID_ADDRESS, "")
    amount, seconds = fields["resourceAmount"], fields.get("durationSec", 259_200)
    placed = sim.place_again(
        client_order_id=None,
        receiver=receiver,
        quantity=amount,
        term=seconds,
        seconds=seconds,
        price_sun=_cost(amount, seconds),
        category="market",
        activate=False,
    )
    if isinstance(placed, Refusal):
        raise Invalid(placed, "")
    request.app[_ACCEPTED][placed.key] = sim.now()
    body = {"error": False, "message": "Success", "data": {"orderId": placed.key}}
    return json_response(201, body)


async def _get(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    assert isinstance(sim, SplitSim)
    order = sim.orders.get(request.match_info["id"])
    if order is None:
        raise Invalid(Refusal.ORDER_NOT_FOUND, "")
    return json_response(200, {"error": False, "message": "Success", "data": _order(sim, order)})


async def _estimate(request: web.Request) -> web.Response:
    fields = await _fields(request)
    amount, seconds = fields["resourceAmount"], fields.get("durationSec", 259_200)
    data = {
        "unitPrice": DAY_PRICE_SUN,
        "durationSec": seconds,
        "estimateTrx": _cost(amount, seconds),
        "availableResource": 100_000_000,
    }
    return json_response(200, {"error": False, "message": "Success", "data": data})


async def _user_info(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    data = {
        "id": "sandbox",
        "balance": str(sim.balance_sun),
        "representAddress": sim.pool_address,
        "depositAddress": sim.recharge_address,
    }
    return json_response(200, {"error": False, "message": "Success", "data": data})


async def _history(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    assert isinstance(sim, SplitSim)
    page, size = _page_query(request)
    status = request.query.get("status")
    if status not in (None, "Active", "Completed"):
        raise Invalid(
            Refusal.INVALID_PARAMETER,
            "querystring/status must be equal to one of the allowed values",
        )
    accepted = request.app[_ACCEPTED]
    rows = [_history_row(sim, order, accepted) for order in list(sim.orders.values())[::-1]]
    if status is not None:
        rows = [row for row in rows if row["status"] == status]
    data = {"data": rows[page * size : (page + 1) * size], "total": len(rows)}
    return json_response(200, {"error": False, "message": "Success", "data": data})


def _history_row(sim: SplitSim, order: SimOrder, accepted: dict[str, float]) -> dict[str, Any]:
    row = _order(sim, order)
    row["status"] = "Completed" if row["remainAmount"] == 0 else "Active"
    row["createdAt"] = int(accepted.get(order.key, order.created_ms / 1000))
    return row


def _page_query(request: web.Request) -> tuple[int, int]:
    values = []
    for name, default in (("page", 0), ("pageSize", 10)):
        text = request.query.get(name, str(default))
        if not text.isdigit() or (name == "pageSize" and not 1 <= int(text) <= 100):
            raise Invalid(Refusal.INVALID_PARAMETER, f"querystring/{name} is not valid")
        values.append(int(text))
    return values[0], values[1]


def _order(sim: SplitSim, order: SimOrder) -> dict[str, Any]:
    progress = sim.progress(order)
    delegates = []
    delegated_sun = 0
    if progress.status != sim.paid_status and progress.status != "DELEGATE_FAIL":
        # A delegation fills the order once the provider has seen it in a block; until then
        # (or never, for a broadcast that never lands) it is listed but fills nothing.
        confirmed = progress.confirm_status in ("DELEGATION_CONFIRMED", "RECLAIM_CONFIRMED")
        for txid in sim.hashes(order):
            tx = sim.chain.transaction(txid)
            amount = tx.balance if tx is not None else order.staked_sun
            first = txid == order.delegate_hash
            if confirmed if first else sim.chain.tx_block(txid) is not None:
                delegated_sun += amount
            delegator = tx.owner if tx is not None else sim.pool_address
            delegates.append({"delegator": delegator, "amount": amount, "txid": txid})
    filled = min(order.quantity, order.quantity * delegated_sun // max(order.staked_sun, 1))
    return {
        "id": order.key,
        "requester": sim.recharge_address,
        "receiver": order.receiver,
        "resourceAmount": order.quantity,
        "resourceType": "ENERGY",
        "remainAmount": order.quantity - filled,
        "price": order.price_sun / order.quantity,
        "durationSec": order.term,
        "orderType": "NORMAL",
        "allowPartialFill": True,
        "payoutAmount": order.price_sun * filled // order.quantity,
        "fulfilledPercent": 100 * filled // order.quantity,
        "delegates": delegates,
    }
