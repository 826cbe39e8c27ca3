"""``energy-async buy`` shows each phase of the order on stderr as it happens (issue 9)."""

from __future__ import annotations

import re

import anyio
import pytest

from energy_async.sandbox import Delivery, Sandbox
from tests.test_cli import SPEED, cli, no_traceback, urls_args

pytestmark = pytest.mark.anyio
PHASE = re.compile(r"^  (ordered|tx named|in block|verified): ")


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_buy_prints_one_line_per_phase_in_order() -> None:
    sandbox = Sandbox(seed=41, speed=SPEED)
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        run = await cli(
            "buy", "--provider", "catfee", "--to", target, "--energy", "65000", "--json",
            *urls_args(urls, "catfee"),
        )  # fmt: skip
        order = sandbox.catfee.orders
    no_traceback(run)
    assert run.code == 0, run.stderr
    payload = run.json()
    (sim_order,) = order.values()
    txid = payload["order"]["delegate_hash"]
    block = payload["evidence"]["delegation"]["block_number"]
    phases = [line.strip() for line in run.stderr.splitlines() if PHASE.match(line)]
    assert phases == [
        f"ordered: {sim_order.key}",
        f"tx named: {txid}",
        f"in block: {block}",
        "verified: DELIVERED",
    ], run.stderr
    assert txid == sim_order.delegate_hash and block == sandbox.chain.tx_block(txid)


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_a_tx_that_never_lands_shows_no_block_and_its_verdict() -> None:
    sandbox = Sandbox(seed=42, speed=SPEED)
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        sandbox.catfee.delivery.for_target(target, Delivery.NEVER_LANDS)
        with anyio.fail_after(30):
            run = await cli(
                "buy", "--provider", "catfee", "--to", target, "--energy", "65000",
                "--deadline", "2", *urls_args(urls, "catfee"),
            )  # fmt: skip
    no_traceback(run)
    assert "  ordered: " in run.stderr and "  tx named: " in run.stderr
    assert "  in block: " not in run.stderr
    assert "  verified: NOT_DELIVERED" in run.stderr
