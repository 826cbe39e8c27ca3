"""The sandbox as one loopback server: every provider app and TronGrid over one shared chain.

Everything lives in this process and in memory, so as many sandboxes as a test suite wants can
run side by side, each on its own port. The state is a ``world.World``; this module only mounts
its apps: ``/<provider name>`` for each ``registry.PROVIDER_APPS`` entry, ``/trongrid`` and the
admin at ``/_sandbox``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from energy_async.sandbox.admin import build_admin_app
from energy_async.sandbox.faults import Fault
from energy_async.sandbox.provider_core import Delivery
from energy_async.sandbox.provider_http import PROVIDER_FAULTS, Handler
from energy_async.sandbox.registry import PROVIDER_APPS
from energy_async.sandbox.trongrid import TRONGRID_FAULTS, build_trongrid_app
from energy_async.sandbox.world import World

__all__ = ["Sandbox", "SandboxURLs"]

_SHUTDOWN_SECONDS = 1.0  # in-flight requests get this long when the server closes


@dataclass(frozen=True, slots=True)
class SandboxURLs:
    """Base URLs to hand to clients; each service lives under its own prefix."""

    base: str
    catfee: str
    mefree: str
    trongrid: str
    admin: str

    @classmethod
    def at(cls, base: str) -> SandboxURLs:
        return cls(base, f"{base}/catfee", f"{base}/mefree", f"{base}/trongrid", f"{base}/_sandbox")

    def provider(self, name: str) -> str:
        """The base URL of any registered provider app (``registry.PROVIDER_APPS``), as the
        provider's docs give it (TEnergy's ends in ``/v1``)."""
        suffix = next((app.base_path for app in PROVIDER_APPS if app.name == name), "")
        return f"{self.base}/{name}{suffix}"


class Sandbox(World):
    """A ``World`` served over HTTP: every provider app, TronGrid and the admin on one port."""

    def build_app(self) -> web.Application:
        """A fresh root app with every service mounted (one per server: aiohttp apps freeze)."""

        @web.middleware
        async def catch_up_first(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.catch_up()
            return await handler(request)

        app = web.Application(middlewares=[catch_up_first])
        for provider in self.provider_apps:
            app.add_subapp(f"/{provider.name}", provider.build_app(self.providers[provider.name]))
        app.add_subapp("/trongrid", build_trongrid_app(self.chain, self.trongrid))
        app.add_subapp("/_sandbox", build_admin_app(self))
        return app

    @asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[SandboxURLs]:
        """Serve every service on one port (0: any free one) until the block exits."""
        runner = web.AppRunner(
            self.build_app(), access_log=None, shutdown_timeout=_SHUTDOWN_SECONDS
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            yield SandboxURLs.at(f"http://{_url_host(bound_host)}:{bound_port}")
        finally:
            await runner.cleanup()

    def describe(self, urls: SandboxURLs) -> str:
        """What a person needs to point a client at this sandbox and stage a scenario."""
        admin = urls.admin
        deliveries = ", ".join(Delivery)
        provider_faults = ", ".join(fault for fault in Fault if fault in PROVIDER_FAULTS)
        trongrid_faults = ", ".join(fault for fault in Fault if fault in TRONGRID_FAULTS)
        services = [
            f"  {name:<9} {urls.provider(name)}  key {sim.api_key}  secret {sim.api_secret}"
            for name, sim in self.providers.items()
        ]
        exports = [
            f"  export {name.upper()}_API_KEY={sim.api_key} "
            f"{name.upper()}_API_SECRET={sim.api_secret}"
            for name, sim in self.providers.items()
        ]
        return "\n".join(
            [
                f"energy_async sandbox (seed {self.seed}, head block {self.chain.head()})",
                f"  {'trongrid':<9} {urls.trongrid}  (any or no TRON-PRO-API-KEY)",
                *services,
                f"  {'admin':<9} {admin}  (loopback only, no auth)",
                "",
                "Point the CLI at it:",
                *exports,
                f"  TARGET=$(curl -s -X POST {admin}/targets | python3 -c "
                "'import json,sys; print(json.load(sys.stdin)[\"address\"])')",
                f"  energy-async buy --provider catfee --to $TARGET --energy 65000 "
                f"--provider-url {urls.catfee} --trongrid-url {urls.trongrid}",
                "",
                "Stage a scenario (POST JSON):",
                f"  curl {admin}/state",
                f"  curl -X POST {admin}/targets",
                f"  curl -X POST {admin}/advance -d '{{\"blocks\": 20}}'",
                f'  curl -X POST {admin}/accounts -d \'{{"balance_sun": 5000000, '
                '"energy_stake_sun": 0, "usdt_base_units": 100000000}\'',
                "      (an account to send USDT from: energy-async ready --from ...)",
                f'  curl -X POST {admin}/trc20/mint -d \'{{"address": "T...", "amount": 1}}\'',
                f'  curl -X POST {admin}/delivery -d \'{{"provider": "mefree", '
                '"target": "T...", "delivery": "CLAIM_WITHOUT_DELEGATING"}\'',
                '      (no target: "rate": 0.1 sets a rate, neither sets the default)',
                f"      deliveries: {deliveries}",
                f'  curl -X POST {admin}/faults -d \'{{"service": "catfee", '
                '"fault": "RATE_LIMIT", "times": 2, "endpoint": "create"}\'',
                '      ("rate": 0.05 instead of "times"; "params": {"retry_after": 3})',
                f"      provider faults: {provider_faults}",
                f"      trongrid faults: {trongrid_faults}",
            ]
        )


def _url_host(host: str) -> str:
    address = ipaddress.ip_address(host)
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]" if address.version == 6 else str(address)
