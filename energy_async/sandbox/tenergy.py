"""TEnergy's API as peers.md section 2.6 describes it (its SDK and MCP schema).

Mounted so that the base URL ends in ``/v1``: ``POST /v1/orders`` (JSON ``{resource: "energy",
amount, tier, receiver, client_order_id?}``; 201 with the order), ``GET /v1/orders/{id}`` and
``GET /v1/orders/cid:{client_order_id}``, ``GET /v1/balance``. Authentication: ``x-api-key``,
``x-api-timestamp`` (ISO-8601 UTC with ms) and ``x-api-sign = base64(HMAC-SHA256(secret,
timestamp + METHOD + path?query + body))`` over the exact bytes received; a signature used
before is refused (``1009 replayed_signature``). Errors: ``{"error": {code, slug, message},
"request_id"}``.
A repeated ``client_order_id`` answers the earlier order ("same id, same order").

Sandbox assumptions, documented nowhere: a 5 s timestamp window (as CatFee's), prices below
(sun per unit of energy), receivers must be activated already, the balance reply is
``{"balance_sun"}``, and the error codes other than 1008/1009.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.pools import SplitSim
from energy_async.sandbox.provider_core import ProviderSim, Refusal, SimOrder
from energy_async.sandbox.provider_face import Face, build_face_app, json_response
from energy_async.sandbox.provider_http import SIM, Invalid, check_quantity

__all__ = [
    "TENERGY_API_KEY",
    "TENERGY_API_SECRET",
    "TIER_PRICES_SUN",
    "TIER_SECONDS",
    "build_tenergy_app",
    "tenergy_sim",
]

TENERGY_API_KEY = "ak_test_sandbox"
TENERGY_API_SECRET = "sk_test_sandbox"
TIER_SECONDS = {"5m": 300, "1h": 3600, "1d": 86_400}
TIER_PRICES_SUN = {"5m": 9, "1h": 16, "1d": 42}
MAX_SKEW_SECONDS = 5.0
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_CID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ERRORS = {
    Refusal.INSUFFICIENT_BALANCE: (402, 1101, "insufficient_balance"),
    Refusal.ORDER_NOT_FOUND: (404, 1004, "not_found"),
    Refusal.ADDRESS_NOT_ACTIVATED: (400, 1102, "receiver_not_activated"),
}


def tenergy_sim(chain: Chain, *, seed: int = 0) -> SplitSim:
    return SplitSim(
        chain,
        name="tenergy",
        api_key=TENERGY_API_KEY,
        api_secret=TENERGY_API_SECRET,
        paid_status="paid",
        activation_sun=0,
        seed=seed,
    )


class _TEnergyFace:
    def __init__(self, sim: ProviderSim) -> None:
        self._sim = sim
        self._seen_signatures: set[str] = set()
        self._request_ids = itertools.count(1)

    def error(self, status: int, code: int, slug: str, message: str) -> web.Response:
        body = {
            "error": {"code": code, "slug": slug, "message": message},
            "request_id": f"req_{next(self._request_ids):08d}",
        }
        return json_response(status, body)

    def refusal(self, refusal: Refusal, detail: str) -> web.Response:
        status, code, slug = _ERRORS.get(refusal, (400, 1001, "validation_error"))
        return self.error(status, code, slug, detail or refusal.message)

    def not_found(self, request: web.Request) -> web.Response:
        return self.error(404, 1000, "route_not_found", f"{request.method} {request.path}")

    def authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        headers = request.headers
        if not hmac.compare_digest(
            headers.get("x-api-key", "").encode(), self._sim.api_key.encode()
        ):
            return self.error(401, 1007, "invalid_api_key", "x-api-key is missing or unknown")
        stamp = headers.get("x-api-timestamp", "")
        if not _TIMESTAMP.fullmatch(stamp):
            return self.error(401, 1010, "invalid_timestamp", "x-api-timestamp must be ISO-8601")
        message = f"{stamp}{request.method}{request.raw_path}".encode() + body
        digest = hmac.new(self._sim.api_secret.encode(), message, hashlib.sha256).digest()
        expected = base64.b64encode(digest).decode()
        given = headers.get("x-api-sign", "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return self.error(
                401, 1008, "invalid_signature", "expected base64 HMAC of ts+METHOD+path+body"
            )
        if given in self._seen_signatures:
            return self.error(401, 1009, "replayed_signature", "sign every attempt anew")
        moment = datetime.fromisoformat(stamp[:-1] + "+00:00").timestamp()
        if abs(moment - self._sim.now()) >= MAX_SKEW_SECONDS:
            return self.error(401, 1010, "invalid_timestamp", "timestamp outside the window")
        self._seen_signatures.add(given)
        return None


def build_tenergy_app(sim: ProviderSim) -> web.Application:
    face: Face = _TEnergyFace(sim)
    return build_face_app(
        sim,
        face,
        [
            ("POST", "/v1/orders", _create, "create"),
            ("GET", "/v1/orders/{ref}", _get, "get"),
            ("GET", "/v1/balance", _balance, "account"),
        ],
    )


async def _create(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    try:
        fields = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Invalid(Refusal.INVALID_PARAMETER, "body must be JSON") from None
    if not isinstance(fields, dict):
        raise Invalid(Refusal.INVALID_PARAMETER, "body must be a JSON object")
    if fields.get("resource") != "energy":
        raise Invalid(Refusal.INVALID_PARAMETER, "resource must be energy")
    amount = fields.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise Invalid(Refusal.INVALID_PARAMETER, "amount must be an integer")
    check_quantity(amount)
    tier = fields.get("tier")
    if tier not in TIER_SECONDS:
        raise Invalid(Refusal.INVALID_DURATION, "tier must be one of 5m, 1h, 1d")
    receiver = fields.get("receiver")
    if not isinstance(receiver, str) or not sim.chain.is_valid_address(receiver):
        raise Invalid(Refusal.INVALID_ADDRESS, "receiver is not a valid TRON address")
    cid = fields.get("client_order_id")
    if cid is not None and (not isinstance(cid, str) or not _CID.fullmatch(cid)):
        raise Invalid(Refusal.INVALID_PARAMETER, "client_order_id must be 1-64 of [A-Za-z0-9_-]")
    placed = sim.place(
        client_order_id=cid,
        receiver=receiver,
        quantity=amount,
        term=TIER_SECONDS[tier],
        seconds=TIER_SECONDS[tier],
        price_sun=amount * TIER_PRICES_SUN[tier],
        category=tier,
        activate=False,
    )
    if isinstance(placed, Refusal):
        raise Invalid(placed, placed.message)
    return json_response(201, _order_data(sim, placed))


async def _get(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    ref = request.match_info["ref"]
    order: SimOrder | None
    if ref.startswith("cid:"):
        cid = ref[4:]
        order = next((o for o in sim.orders.values() if o.client_order_id == cid), None)
    else:
        order = sim.orders.get(ref)
    if order is None:
        raise Invalid(Refusal.ORDER_NOT_FOUND, f"no order {ref}")
    return json_response(200, _order_data(sim, order))


async def _balance(request: web.Request) -> web.Response:
    return json_response(200, {"balance_sun": request.app[SIM].balance_sun})


def _status(sim: ProviderSim, order: SimOrder) -> tuple[str, str | None]:
    progress = sim.progress(order)
    if progress.status == sim.paid_status:
        return "paid", None
    if progress.status == "DELEGATE_FAIL":
        return "failed", progress.delegate_hash
    if progress.confirm_status == "RECLAIM_CONFIRMED":
        return "reclaimed", progress.delegate_hash
    if progress.confirm_status == "DELEGATION_CONFIRMED":
        return "active", progress.delegate_hash
    return "delegated", progress.delegate_hash


def _order_data(sim: ProviderSim, order: SimOrder) -> dict[str, Any]:
    status, first_hash = _status(sim, order)
    hashes = sim.hashes(order) if isinstance(sim, SplitSim) else [order.delegate_hash]
    tier = next(name for name, seconds in TIER_SECONDS.items() if seconds == order.term)
    return {
        "id": order.key,
        "client_order_id": order.client_order_id,
        "resource": "energy",
        "amount": order.quantity,
        "tier": tier,
        "receiver": order.receiver,
        "status": status,
        "delegate_hashes": [h for h in hashes if h] if first_hash else [],
        "price_sun": order.price_sun,
        "created_at_ms": order.created_ms,
        "expires_at_ms": order.expires_ms,
        "balance_after_sun": order.balance_after,
    }
