"""The CLI over every registered provider: ``--provider`` choices, ``quote --provider auto``
and ``buy --provider auto`` against a sandbox served in this process."""

from __future__ import annotations

import json
import os
import sys

import anyio
import pytest

from energy_async.providers import PROVIDERS
from energy_async.sandbox import Sandbox, SandboxURLs
from energy_async.sandbox.trc20 import USDT

pytestmark = pytest.mark.anyio

TRX = 1_000_000


def _env(sandbox: Sandbox, urls: SandboxURLs) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_SECRET"))}
    for name, sim in sandbox.providers.items():
        env[f"{name.upper()}_API_KEY"] = sim.api_key
        if sim.api_secret:
            env[f"{name.upper()}_API_SECRET"] = sim.api_secret
        env[f"ENERGY_ASYNC_{name.upper()}_URL"] = urls.provider(name)
    env["ENERGY_ASYNC_TRONGRID_URL"] = urls.trongrid
    return env


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [sys.executable, "-m", "energy_async", *args], env=env, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_provider_choices_are_the_registry_plus_auto() -> None:
    code, _, err = await _cli(dict(os.environ), "quote", "--provider", "nosuch", "--energy", "1")
    assert code == 2
    for name in (*PROVIDERS, "auto"):
        assert name in err


async def test_quote_auto_prints_one_row_per_provider_cheapest_first() -> None:
    sandbox = Sandbox(seed=4, speed=0.0)
    async with sandbox.serve() as urls:
        env = _env(sandbox, urls)
        code, out, err = await _cli(
            env, "quote", "--provider", "auto", "--energy", "100000", "--json"
        )
    assert code == 0, err
    rows = json.loads(out)
    assert [row["provider"] for row in rows] == ["itrx", "catfee", "tronsave", "mefree", "tenergy"]
    assert [row["cost_sun"] for row in rows[:3]] == [1_500_000, 1_700_000, 3_000_000]
    assert all(row["error"] for row in rows[3:])
    for secret in (sim.api_secret for sim in sandbox.providers.values() if sim.api_secret):
        assert secret not in out and secret not in err


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_buy_auto_routes_to_the_cheapest_and_says_so() -> None:
    sandbox = Sandbox(seed=4, speed=30.0)
    async with sandbox.serve() as urls:
        env = _env(sandbox, urls)
        target = sandbox.new_target()
        code, out, err = await _cli(
            env, "buy", "--provider", "auto", "--to", target, "--energy", "100000", "--json"
        )
    assert code == 0, err
    result = json.loads(out)
    assert result["verdict"] == "DELIVERED" and result["provider"] == "itrx"
    assert result["evidence"]["route"][-1] == "itrx: chosen, verdict DELIVERED"
    assert "route: itrx: chosen" in err
    # The phases of the order, one line each, as `buy` with a named provider prints them.
    order_id = result["order"]["id"]
    for line in (f"ordered: {order_id}", "tx named: ", "in block: ", "verified: DELIVERED"):
        assert line in err, err
    orders = {name: len(sim.orders) for name, sim in sandbox.providers.items()}
    assert orders == {"catfee": 0, "mefree": 0, "tenergy": 0, "itrx": 1, "tronsave": 0}


async def test_auto_is_refused_where_one_provider_is_needed() -> None:
    code, _, err = await _cli(dict(os.environ), "account", "--provider", "auto")
    assert code == 2 and "Traceback" not in err and "auto" in err


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_buy_auto_for_a_transfer_routes_the_shortfall_and_ends_ready() -> None:
    sandbox = Sandbox(seed=4, speed=30.0)
    async with sandbox.serve() as urls:
        env = _env(sandbox, urls)
        chain = sandbox.chain
        sender = chain.new_account(balance_sun=50 * TRX)
        chain.trc20.mint(USDT, sender, 100 * TRX)
        receiver = chain.new_address()
        chain.trc20.mint(USDT, receiver, 1)  # holds USDT: 64,285 energy to send
        code, out, err = await _cli(
            env, "buy", "--provider", "auto", "--from", sender, "--usdt-to", receiver,
            "--amount", "12.5", "--json",
        )  # fmt: skip
    assert code == 0, err
    answer = json.loads(out)
    assert answer["verdict"] == "DELIVERED" and answer["ready"] is True
    assert answer["before"]["energy_missing"] == 64_285 and answer["after"]["energy_missing"] == 0
    assert answer["result"]["evidence"]["route"][-1] == "itrx: chosen, verdict DELIVERED"
    assert "route: itrx: chosen" in err and "Traceback" not in err
    orders = {name: len(sim.orders) for name, sim in sandbox.providers.items()}
    assert orders == {"catfee": 0, "mefree": 0, "tenergy": 0, "itrx": 1, "tronsave": 0}
