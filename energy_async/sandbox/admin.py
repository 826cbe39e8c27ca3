"""Admin endpoints, so scripts and CLI tests can stage scenarios on a sandbox in another process.

Mounted at ``/_sandbox``; answers loopback clients only and needs no auth:

- ``GET /state``: head, solid head, chain time, energy totals, and per provider the balance,
  charges (per ``client_order_id``, plus ``charges_without_id``), orders and request counts.
- ``POST /delivery {"provider", "delivery", "target"?, "rate"?}``: with a target, that
  address's orders; else with a rate, a seeded share of all orders; else the default.
- ``POST /faults {"service", "fault", "times"?, "rate"?, "endpoint"?, "params"?}``: inject the
  fault for the next ``times`` requests (default 1), or set its rate.
- ``POST /targets``: a new activated address with no energy, as ``{"address"}``.
- ``POST /accounts {"balance_sun"?, "energy_stake_sun"?, "bandwidth_stake_sun"?,
  "usdt_base_units"?}``: a new activated account holding that much TRX, its own stake for
  energy and for bandwidth (in sun; energy stake counts in TotalEnergyWeight) and USDT (base
  units: 6 decimals), all 0 by default (no body too); answers its address, balance, energy
  and bandwidth limits and USDT.
- ``POST /trc20/mint {"address", "amount", "token"?}``: ``amount`` base units of a deployed
  TRC20 (USDT by default) to any valid address, activated or not (holding a token does not
  activate an account); answers the new balance.
- ``POST /advance {"blocks"}``: move the chain, providers acting on the way.

Bad input answers 400 ``{"error": "..."}``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from energy_async.sandbox.faults import Fault
from energy_async.sandbox.provider_core import Delivery, ProviderSim
from energy_async.sandbox.provider_http import PROVIDER_FAULTS
from energy_async.sandbox.trc20 import USDT
from energy_async.sandbox.trongrid import TRONGRID_FAULTS
from energy_async.sandbox.world import World

__all__ = ["build_admin_app"]

_SANDBOX: web.AppKey[World] = web.AppKey("sandbox")
_MAX_BLOCKS = 10_000_000
_Body = TypeVar("_Body", bound=msgspec.Struct)
_MAX_UINT256 = 2**256 - 1
# java-tron keeps balances and stakes in a Java long.
_Sun = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_BaseUnits = Annotated[int, msgspec.Meta(ge=0)]  # a uint256, checked by _check_uint256


class _DeliveryChange(msgspec.Struct, forbid_unknown_fields=True):
    provider: str  # a registered provider's name
    delivery: Delivery
    target: str | None = None
    rate: float | None = None


class _FaultChange(msgspec.Struct, forbid_unknown_fields=True):
    service: str  # "trongrid" or a registered provider's name
    fault: Fault
    times: int = 1
    rate: float | None = None
    endpoint: str = "any"
    params: dict[str, Any] = msgspec.field(default_factory=dict)


class _Advance(msgspec.Struct, forbid_unknown_fields=True):
    blocks: int


class _NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    balance_sun: _Sun = 0
    energy_stake_sun: _Sun = 0
    bandwidth_stake_sun: _Sun = 0
    usdt_base_units: _BaseUnits = 0  # 12.5 USDT is 12_500_000


class _Mint(msgspec.Struct, forbid_unknown_fields=True):
    address: str
    amount: Annotated[int, msgspec.Meta(ge=1)]  # base units, a uint256
    token: str = USDT  # a TRC20 deployed on the sandbox chain


class _BadInput(Exception):
    pass


def build_admin_app(sandbox: World) -> web.Application:
    app = web.Application(middlewares=[_loopback_only])
    app[_SANDBOX] = sandbox
    app.router.add_get("/state", _state)
    app.router.add_post("/delivery", _delivery)
    app.router.add_post("/faults", _faults)
    app.router.add_post("/targets", _targets)
    app.router.add_post("/accounts", _accounts)
    app.router.add_post("/trc20/mint", _mint)
    app.router.add_post("/advance", _advance)
    return app


@web.middleware
async def _loopback_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not _is_loopback(request.remote):
        return _reply({"error": "the sandbox admin answers loopback clients only"}, status=403)
    try:
        return await handler(request)
    except _BadInput as error:
        return _reply({"error": str(error)}, status=400)


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _reply(body: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


async def _read(request: web.Request, kind: type[_Body]) -> _Body:
    try:
        return msgspec.json.decode(await request.read(), type=kind)
    except msgspec.DecodeError as error:  # ValidationError included
        raise _BadInput(str(error)) from None


async def _state(request: web.Request) -> web.Response:
    sandbox = request.app[_SANDBOX]
    chain = sandbox.chain
    state: dict[str, Any] = {
        "head": chain.head(),
        "solid_head": chain.solid_head(),
        "chain_time": chain.clock.now(),
        "total_energy_limit": chain.total_energy_limit,
        "total_energy_weight": chain.total_energy_weight,
    }
    for name, sim in sandbox.providers.items():
        counts = sim.charge_counts()
        state[name] = {
            "balance_sun": sim.balance_sun,
            "total_charged_sun": sim.total_charged_sun,
            "orders": len(sim.orders),
            "charges": {key: count for key, count in counts.items() if key is not None},
            "charges_without_id": counts.get(None, 0),
            "requests": sim.control.count(),
            "pool_address": sim.pool_address,
        }
    state["trongrid"] = {"requests": sandbox.trongrid.count()}
    return _reply(state)


async def _delivery(request: web.Request) -> web.Response:
    change = await _read(request, _DeliveryChange)
    plan = _provider(request.app[_SANDBOX], change.provider).delivery
    try:
        if change.target is not None:
            if not request.app[_SANDBOX].chain.is_valid_address(change.target):
                raise _BadInput(f"not a TRON address: {change.target!r}")
            plan.for_target(change.target, change.delivery)
        elif change.rate is not None:
            plan.set_rate(change.delivery, change.rate)
        else:
            plan.default = change.delivery
    except ValueError as error:
        raise _BadInput(str(error)) from None
    return _reply({"ok": True})


async def _faults(request: web.Request) -> web.Response:
    change = await _read(request, _FaultChange)
    sandbox = request.app[_SANDBOX]
    if change.service == "trongrid":
        control, allowed = sandbox.trongrid, TRONGRID_FAULTS
    else:
        control, allowed = _provider(sandbox, change.service).control, PROVIDER_FAULTS
    if change.fault not in allowed:
        raise _BadInput(f"{change.service} never answers with {change.fault}")
    try:
        if change.rate is not None:
            control.faults.set_rate(
                change.fault, change.rate, endpoint=change.endpoint, **change.params
            )
        elif change.times >= 1:
            control.faults.inject(
                change.fault, times=change.times, endpoint=change.endpoint, **change.params
            )
        else:
            raise _BadInput("times must be at least 1")
    except ValueError as error:
        raise _BadInput(str(error)) from None
    return _reply({"ok": True})


def _provider(world: World, name: str) -> ProviderSim:
    sim = world.providers.get(name)
    if sim is None:
        known = ", ".join(sorted(world.providers))
        raise _BadInput(f"no provider {name!r} in this sandbox (known: {known})")
    return sim


async def _targets(request: web.Request) -> web.Response:
    return _reply({"address": request.app[_SANDBOX].new_target()})


async def _accounts(request: web.Request) -> web.Response:
    # No body at all is an empty account, as on /targets.
    spec = await _read(request, _NewAccount) if await request.read() else _NewAccount()
    _check_uint256(spec.usdt_base_units, 0, "usdt_base_units")
    chain = request.app[_SANDBOX].chain
    address = chain.new_account(
        balance_sun=spec.balance_sun,
        energy_stake_sun=spec.energy_stake_sun,
        bandwidth_stake_sun=spec.bandwidth_stake_sun,
    )
    if spec.usdt_base_units:
        chain.trc20.mint(USDT, address, spec.usdt_base_units)
    return _reply(
        {
            "address": address,
            "balance_sun": spec.balance_sun,
            "energy_limit": chain.energy_limit(address),
            "net_limit": chain.net_limit(address),
            "usdt_base_units": chain.trc20.balance_of(USDT, address),
        }
    )


async def _mint(request: web.Request) -> web.Response:
    mint = await _read(request, _Mint)
    chain = request.app[_SANDBOX].chain
    tokens = chain.trc20.tokens
    if mint.token not in tokens:
        known = ", ".join(f"{token.symbol} {address}" for address, token in tokens.items())
        raise _BadInput(f"no TRC20 at {mint.token!r} on this sandbox (deployed: {known})")
    if not chain.is_valid_address(mint.address):
        raise _BadInput(f"not a TRON address: {mint.address!r}")
    balance = chain.trc20.balance_of(mint.token, mint.address)
    _check_uint256(mint.amount, balance, "amount")
    chain.trc20.mint(mint.token, mint.address, mint.amount)
    return _reply(
        {
            "address": mint.address,
            "token": mint.token,
            "balance": balance + mint.amount,
            "activated": chain.is_activated(mint.address),
        }
    )


def _check_uint256(amount: int, balance: int, name: str) -> None:
    """msgspec bounds stop at int64; a token balance is a uint256 word."""
    if balance + amount > _MAX_UINT256:
        held = f" (the address holds {balance})" if balance else ""
        raise _BadInput(f"{name} would take the balance past uint256{held}")


async def _advance(request: web.Request) -> web.Response:
    advance = await _read(request, _Advance)
    if not 0 <= advance.blocks <= _MAX_BLOCKS:
        raise _BadInput(f"blocks must be 0 to {_MAX_BLOCKS}")
    sandbox = request.app[_SANDBOX]
    sandbox.advance_blocks(advance.blocks)
    return _reply({"head": sandbox.chain.head()})
