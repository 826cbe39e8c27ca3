"""CatFee's API as its documentation describes it (reference/providers.md section 1).

``POST /v1/order?quantity&receiver&duration[&client_order_id][&activate]``, ``GET
/v1/order/{id}``, ``GET /v1/account``, ``GET /v1/estimate?quantity&duration`` (``data`` is a bare
integer, sun). Only ``duration=1h`` is documented, so only it is accepted (``duration`` is echoed
in minutes: 60). Keys not set yet (``delegate_hash``, ``reclaim_hash`` and their timestamps,
``client_order_id`` when none was sent) are left out, as in the logged real response.
Timestamps are chain time in milliseconds. Prices are the sandbox's own: 17 sun per energy for
an hour (65,000 energy cost 1,105,000 sun in the logged real order) and 1 TRX to activate.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.provider_core import ProviderSim, Refusal, SimOrder
from energy_async.sandbox.provider_http import (
    SIM,
    Invalid,
    build_provider_app,
    envelope,
    masked,
    read_address,
    read_bool,
    read_client_order_id,
    read_quantity,
    read_text,
    refuse,
)

__all__ = [
    "ACTIVATE_AMOUNT_SUN",
    "CATFEE_API_KEY",
    "CATFEE_API_SECRET",
    "DURATION_MINUTES",
    "HOUR_PRICE_SUN",
    "build_catfee_app",
    "catfee_sim",
]

CATFEE_API_KEY = "sandbox-catfee-key"
CATFEE_API_SECRET = "sandbox-catfee-secret"
DURATION_MINUTES = {"1h": 60}
HOUR_PRICE_SUN = 17  # per unit of energy
ACTIVATE_AMOUNT_SUN = 1_000_000


def catfee_sim(chain: Chain, *, seed: int = 0) -> ProviderSim:
    return ProviderSim(
        chain,
        name="catfee",
        api_key=CATFEE_API_KEY,
        api_secret=CATFEE_API_SECRET,
        paid_status="PAYMENT_SUCCESS",
        activation_sun=ACTIVATE_AMOUNT_SUN,
        seed=seed,
    )


def build_catfee_app(sim: ProviderSim) -> web.Application:
    return build_provider_app(
        sim,
        "CF",
        [
            ("POST", "/v1/order", _create, "create"),
            ("GET", "/v1/order/{id}", _get, "get"),
            ("GET", "/v1/account", _account, "account"),
            ("GET", "/v1/estimate", _estimate, "estimate"),
        ],
    )


def _read_minutes(request: web.Request) -> int:
    duration = read_text(request.query, "duration")
    if duration is None:
        raise Invalid(Refusal.INVALID_PARAMETER, "duration is required")
    minutes = DURATION_MINUTES.get(duration)
    if minutes is None:
        raise Invalid(Refusal.INVALID_DURATION, "allowed values are 1h")
    return minutes


async def _create(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    query = request.query
    quantity = read_quantity(query)
    receiver = read_address(query, "receiver", sim)
    minutes = _read_minutes(request)
    client_order_id = read_client_order_id(query)
    activate = read_bool(query, "activate", default=True)
    placed = sim.place(
        client_order_id=client_order_id,
        receiver=receiver,
        quantity=quantity,
        term=minutes,
        seconds=minutes * 60,
        price_sun=quantity * HOUR_PRICE_SUN,
        category="hour",
        activate=activate,
    )
    if isinstance(placed, Refusal):
        return refuse(placed)
    return envelope(_order_data(sim, placed))


async def _get(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    order = sim.orders.get(request.match_info["id"])
    if order is None:
        return refuse(Refusal.ORDER_NOT_FOUND)
    return envelope(_order_data(sim, order))


async def _estimate(request: web.Request) -> web.Response:
    quantity = read_quantity(request.query)
    _read_minutes(request)
    return envelope(quantity * HOUR_PRICE_SUN)


async def _account(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    data = {
        "wallet": "",
        "api_key": sim.api_key,
        "api_secret": masked(sim.api_secret),
        "email": "sandbox@example.invalid",
        "telegram_id": 0,
        "recharge_address": sim.recharge_address,
        "total_recharge": sim.balance_sun + sim.total_charged_sun,
        "total_hour_consume": sim.consumed("hour"),
        "total_day_consume": 0,
        "total_multiday_consume": 0,
        "total_flash_consume": 0,
        "total_activate_consume": sim.consumed("activate"),
        "total_permission_consume": 0,
        "total_subscribe_consume": 0,
        "total_bandwidth_consume": 0,
        "total_recharge_usdt": 0,
        "total_premium_consume": 0,
        "whitelist": "",
        "balance": sim.balance_sun,
        "balance_usdt": 0,
    }
    return envelope(data)


def _order_data(sim: ProviderSim, order: SimOrder) -> dict[str, Any]:
    progress = sim.progress(order)
    data: dict[str, Any] = {"id": order.key}
    if order.client_order_id is not None:
        data["client_order_id"] = order.client_order_id
    data.update(
        resource_type="ENERGY",
        billing_type="API",
        source_type="API",
        pay_timestamp=order.created_ms,
        receiver=order.echoed_receiver,
    )
    if progress.delegate_hash is not None:
        data["delegate_hash"] = progress.delegate_hash
        data["delegate_timestamp"] = progress.delegated_ms
    if progress.reclaim_hash is not None:
        data["reclaim_hash"] = progress.reclaim_hash
        data["reclaim_timestamp"] = progress.reclaimed_ms
    data.update(
        pay_amount_sun=order.price_sun,
        activate_amount_sun=order.activation_sun,
        quantity=order.quantity,
        staked_sun=order.staked_sun,
        duration=order.term,
        expired_timestamp=order.expires_ms,
        status=progress.status,
        activate_status="ACTIVATED" if order.activated_receiver else "ALREADY_ACTIVATED",
        confirm_status=progress.confirm_status,
        balance=order.balance_after,
    )
    return data
