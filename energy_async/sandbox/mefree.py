"""Mefree's API as its documentation describes it (reference/providers.md section 2).

``POST /api/order?(quantity|count)&target_address&period[&client_order_id]``, ``GET
/api/order/{pay_hash}``, ``GET /api/config``. Exactly one of ``quantity`` and ``count`` (count N
buys N x 65,000 energy); ``period`` 0 is a fast charge, 1 one hour, 2 one day, 3..30 that many
days (as documented). Unset keys (``delegate_hash``, ``client_order_id`` when none was sent) are
left out. Sandbox assumptions, documented nowhere: a fast charge lasts 10 minutes; receivers
that are not activated are activated and charged ``activate_price_sun`` (Mefree has no
``activate`` switch); ``amount_sun`` includes that activation; ``pay_address`` is the
delegating pool; prices below are per unit of energy (multi-day: per day).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.provider_core import MIN_QUANTITY, ProviderSim, Refusal, SimOrder
from energy_async.sandbox.provider_http import (
    SIM,
    Invalid,
    build_provider_app,
    check_quantity,
    envelope,
    masked,
    read_address,
    read_client_order_id,
    read_int,
    read_text,
    refuse,
)

__all__ = [
    "ENERGY_PER_TRANSFER",
    "FAST_SECONDS",
    "MEFREE_API_KEY",
    "MEFREE_API_SECRET",
    "PRICES_SUN",
    "build_mefree_app",
    "mefree_sim",
    "period_seconds",
]

MEFREE_API_KEY = "sandbox-mefree-key"
MEFREE_API_SECRET = "sandbox-mefree-secret"
ENERGY_PER_TRANSFER = MIN_QUANTITY
FAST_SECONDS = 600
PRICES_SUN = {
    "activate_price_sun": 1_100_000,
    "hour_price_sun": 17,
    "day_price_sun": 40,
    "subscribe_price_sun": 0,
    "multi_day_price_sun": 35,
    "flash_price_sun": 15,
    "bandwidth_price_sun": 600,
}
_DAY = 86_400
_CREATED_AT = "2024-11-26 12:34:56"


def mefree_sim(chain: Chain, *, seed: int = 0) -> ProviderSim:
    return ProviderSim(
        chain,
        name="mefree",
        api_key=MEFREE_API_KEY,
        api_secret=MEFREE_API_SECRET,
        paid_status="TRANSFER_SUCCESS",
        activation_sun=PRICES_SUN["activate_price_sun"],
        seed=seed,
    )


def build_mefree_app(sim: ProviderSim) -> web.Application:
    return build_provider_app(
        sim,
        "MF",
        [
            ("POST", "/api/order", _create, "create"),
            ("GET", "/api/order/{pay_hash}", _get, "get"),
            ("GET", "/api/config", _config, "account"),
        ],
    )


def period_seconds(period: int) -> int:
    if period == 0:
        return FAST_SECONDS
    if period == 1:
        return 3_600
    return _DAY if period == 2 else period * _DAY


def _price_per_energy(period: int) -> int:
    if period == 0:
        return PRICES_SUN["flash_price_sun"]
    if period == 1:
        return PRICES_SUN["hour_price_sun"]
    if period == 2:
        return PRICES_SUN["day_price_sun"]
    return PRICES_SUN["multi_day_price_sun"] * period


def _read_energy(request: web.Request) -> int:
    query = request.query
    given = [name for name in ("quantity", "count") if read_text(query, name) is not None]
    if len(given) != 1:
        raise Invalid(Refusal.INVALID_PARAMETER, "give exactly one of quantity and count")
    if given == ["quantity"]:
        return check_quantity(read_int(query, "quantity"))
    count = read_int(query, "count")
    if count < 1:
        raise Invalid(Refusal.INVALID_PARAMETER, "count must be at least 1")
    return check_quantity(count * ENERGY_PER_TRANSFER)


async def _create(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    query = request.query
    energy = _read_energy(request)
    receiver = read_address(query, "target_address", sim)
    period = read_int(query, "period")
    if period > 30:
        raise Invalid(Refusal.INVALID_DURATION, "period must be 0 to 30")
    client_order_id = read_client_order_id(query)
    placed = sim.place(
        client_order_id=client_order_id,
        receiver=receiver,
        quantity=energy,
        term=period,
        seconds=period_seconds(period),
        price_sun=energy * _price_per_energy(period),
        category="flash" if period == 0 else "normal",
    )
    if isinstance(placed, Refusal):
        return refuse(placed)
    return envelope(_order_data(sim, placed))


async def _get(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    order = sim.orders.get(request.match_info["pay_hash"])
    if order is None:
        return refuse(Refusal.ORDER_NOT_FOUND)
    return envelope(_order_data(sim, order))


async def _config(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    data: dict[str, Any] = {
        "api_key": sim.api_key,
        "api_secret": masked(sim.api_secret),
        "recharge_address": sim.recharge_address,
        **PRICES_SUN,
        "total_recharge": sim.balance_sun + sim.total_charged_sun,
        "total_normal_consume": sim.consumed("normal"),
        "total_batch_consume": 0,
        "total_subscribe_consume": 0,
        "total_host_consume": 0,
        "total_activate_consume": sim.consumed("activate"),
        "total_realtime_consume": 0,
        "total_flash_consume": sim.consumed("flash"),
        "total_bandwidth_consume": 0,
        "total_permission_consume": 0,
        "whitelist": "",
        "created_at": _CREATED_AT,
        "updated_at": _CREATED_AT,
        "account_balance": sim.balance_sun,
    }
    return envelope(data)


def _order_data(sim: ProviderSim, order: SimOrder) -> dict[str, Any]:
    progress = sim.progress(order)
    data: dict[str, Any] = {}
    if order.client_order_id is not None:
        data["client_order_id"] = order.client_order_id
    data.update(
        pay_hash=order.key,
        timestamp=order.created_ms,
        pay_address=sim.pool_address,
    )
    if progress.delegate_hash is not None:
        data["delegate_hash"] = progress.delegate_hash
    data.update(
        amount_sun=order.price_sun + order.activation_sun,
        energy_to_address=order.echoed_receiver,
        energy_quantity=order.quantity,
        energy_period=order.term,
        energy_expired_timestamp=order.expires_ms,
        status=progress.status,
        confirm_status=progress.confirm_status,
        activate_status="ACTIVATED" if order.activated_receiver else "ALREADY_ACTIVATED",
        balance=order.balance_after,
    )
    return data
