"""The sandbox is built from the providers' and TRON's documentation, never from the client.

A fresh interpreter imports ``energy_async.sandbox``, runs a little of it (an account, a USDT
mint, one CatFee order placed on its in-process simulator, and raw HTTP reads of TronGrid and
CatFee over loopback) and lists the ``energy_async`` modules it loaded: only the package itself
(whose ``__init__`` loads nothing eagerly) and ``energy_async.sandbox.*`` may be among them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CODE = textwrap.dedent(
    """
    import asyncio
    import json
    import sys

    import aiohttp

    from energy_async.sandbox import Sandbox
    from energy_async.sandbox.trc20 import USDT


    async def main() -> dict[str, object]:
        sandbox = Sandbox(seed=3, speed=0.0)
        sender = sandbox.chain.new_account(balance_sun=10_000_000)
        receiver = sandbox.chain.new_address()
        sandbox.chain.trc20.mint(USDT, sender, 5_000_000)
        order = sandbox.catfee.place(
            client_order_id="independence-1",
            receiver=sender,
            quantity=65_000,
            term=60,
            seconds=3_600,
            price_sun=65_000 * 90,
            category="hour",
        )
        sandbox.chain.advance_blocks(2)
        async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
            async with http.post(
                f"{urls.trongrid}/wallet/getaccountresource",
                json={"address": sender, "visible": True},
            ) as reply:
                resources = await reply.json(content_type=None)
            word = "00" * 12 + "00" * 20  # transfer to the zero address: any 20 bytes do
            async with http.post(
                f"{urls.trongrid}/wallet/triggerconstantcontract",
                json={
                    "owner_address": sender,
                    "contract_address": USDT,
                    "function_selector": "transfer(address,uint256)",
                    "parameter": word + format(1_000_000, "064x"),
                    "visible": True,
                },
            ) as reply:
                simulation = await reply.json(content_type=None)
        return {
            "order": type(order).__name__,
            "charges": sandbox.catfee.charges("independence-1"),
            "energy_limit": resources.get("EnergyLimit", 0),
            "energy_used": simulation.get("energy_used", 0),
            "receiver_activated": sandbox.chain.is_activated(receiver),
            "modules": sorted(m for m in sys.modules if m.startswith("energy_async")),
        }


    print(json.dumps(asyncio.run(main())))
    """
)


def _is_sandbox(module: str) -> bool:
    return module in ("energy_async", "energy_async.sandbox") or module.startswith(
        "energy_async.sandbox."
    )


def test_the_sandbox_runs_without_importing_the_client() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CODE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout)
    # It really ran: the order was placed and charged, the delegation reached the chain, and
    # the simulation priced a transfer to a new holder (the documented 130,285).
    assert ran["order"] == "SimOrder" and ran["charges"] == 1
    assert ran["energy_limit"] >= 65_000
    assert ran["energy_used"] == 130_285
    assert ran["receiver_activated"] is False
    modules: list[str] = ran["modules"]
    assert "energy_async.sandbox.server" in modules and "energy_async.sandbox.trc20" in modules
    client = [module for module in modules if not _is_sandbox(module)]
    assert client == [], f"the sandbox loaded client modules: {client}"
