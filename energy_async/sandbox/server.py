"""The sandbox as one loopback server: CatFee, Mefree and TronGrid over one shared chain.

Everything lives in this process and in memory, so as many sandboxes as a test suite wants can
run side by side, each on its own port. Before any request is served, the providers perform
what the chain clock says is due (undelegating expired orders), so every service agrees with
the block height however the clock got there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from energy_async.sandbox.admin import build_admin_app
from energy_async.sandbox.catfee import build_catfee_app, catfee_sim
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.faults import Fault, FaultPlan, ServiceControl
from energy_async.sandbox.mefree import build_mefree_app, mefree_sim
from energy_async.sandbox.provider_core import Delivery, ProviderSim
from energy_async.sandbox.provider_http import PROVIDER_FAULTS, Handler
from energy_async.sandbox.trongrid import TRONGRID_FAULTS, build_trongrid_app

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


class Sandbox:
    """Simulated CatFee, Mefree and TronGrid sharing one in-memory chain.

    ``speed`` multiplies the chain clock (blocks every 3 s / speed; 0 freezes it so that only
    ``advance_blocks`` moves it). ``drift_per_block`` makes TotalEnergyWeight wander.
    """

    def __init__(self, *, seed: int = 0, speed: float = 1.0, drift_per_block: float = 0.0) -> None:
        self.seed = seed
        self.chain = Chain(seed=seed, speed=speed, drift_per_block=drift_per_block)
        self.catfee: ProviderSim = catfee_sim(self.chain, seed=seed)
        self.mefree: ProviderSim = mefree_sim(self.chain, seed=seed)
        self.trongrid = ServiceControl(faults=FaultPlan(seed))

    def __repr__(self) -> str:
        return f"<Sandbox seed={self.seed} head={self.chain.head()}>"

    @property
    def providers(self) -> dict[str, ProviderSim]:
        return {"catfee": self.catfee, "mefree": self.mefree}

    def new_target(self) -> str:
        """A fresh activated address with no energy: somewhere to deliver to."""
        return self.chain.new_account()

    def catch_up(self) -> None:
        """Let every provider do what is due by now (the server does this before each request)."""
        for sim in (self.catfee, self.mefree):
            sim.catch_up()

    def advance_blocks(self, blocks: int) -> None:
        """Move the chain ``blocks`` ahead, each provider acting at the block it is due."""
        if blocks < 0:
            raise ValueError("blocks must not be negative")
        goal = self.chain.head() + blocks
        while True:
            self.catch_up()
            head = self.chain.head()
            if head >= goal:
                return
            due = [sim.next_due_block() for sim in (self.catfee, self.mefree)]
            self.chain.advance_blocks(min([goal, *(b for b in due if b is not None)]) - head)

    def build_app(self) -> web.Application:
        """A fresh root app with every service mounted (one per server: aiohttp apps freeze)."""

        @web.middleware
        async def catch_up_first(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.catch_up()
            return await handler(request)

        app = web.Application(middlewares=[catch_up_first])
        app.add_subapp("/catfee", build_catfee_app(self.catfee))
        app.add_subapp("/mefree", build_mefree_app(self.mefree))
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
        catfee, mefree = self.catfee, self.mefree
        return "\n".join(
            [
                f"energy_async sandbox (seed {self.seed}, head block {self.chain.head()})",
                f"  CatFee    {urls.catfee}  key {catfee.api_key}  secret {catfee.api_secret}",
                f"  Mefree    {urls.mefree}  key {mefree.api_key}  secret {mefree.api_secret}",
                f"  TronGrid  {urls.trongrid}  (any or no TRON-PRO-API-KEY)",
                f"  Admin     {admin}  (loopback only, no auth)",
                "",
                "Point the CLI at it:",
                f"  export CATFEE_API_KEY={catfee.api_key} CATFEE_API_SECRET={catfee.api_secret}",
                f"  export MEFREE_API_KEY={mefree.api_key} MEFREE_API_SECRET={mefree.api_secret}",
                f"  TARGET=$(curl -s -X POST {admin}/targets | python3 -c "
                "'import json,sys; print(json.load(sys.stdin)[\"address\"])')",
                f"  energy-async buy --provider catfee --to $TARGET --energy 65000 "
                f"--provider-url {urls.catfee} --trongrid-url {urls.trongrid}",
                "",
                "Stage a scenario (POST JSON):",
                f"  curl {admin}/state",
                f"  curl -X POST {admin}/targets",
                f"  curl -X POST {admin}/advance -d '{{\"blocks\": 20}}'",
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
