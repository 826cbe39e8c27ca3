"""The commands users reach for: ``--version``, ``quote``, ``account``, ``order`` by your own id,
base URLs from the environment, ``--max-trx``, ``--help`` with defaults and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from energy_async import __version__
from energy_async.sandbox import Sandbox
from tests.test_cli import ENV, SPEED, cli, no_traceback, urls_args

pytestmark = pytest.mark.anyio


@pytest.fixture
async def served() -> Any:
    sandbox = Sandbox(seed=77, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_version_and_help_show_defaults_and_exit_codes() -> None:
    version = await cli("--version")
    assert version.code == 0 and __version__ in version.stdout
    shown = await cli("batch", "--help")
    assert shown.code == 0
    for text in ("default: 16", "default: 120.0", "exit codes:", "4  nothing bought"):
        assert text in shown.stdout, text


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_quote_and_account_read_without_buying(served: Any) -> None:
    sandbox, urls = served
    quote = await cli(
        "quote",
        "--provider",
        "catfee",
        "--energy",
        "65000",
        "--json",
        "--provider-url",
        urls.catfee,
    )
    assert quote.code == 0, quote.stderr
    assert json.loads(quote.stdout)["cost_sun"] > 0
    account = await cli("account", "--provider", "catfee", "--provider-url", urls.catfee)
    assert account.code == 0, account.stderr
    assert "balance" in account.stderr and "TRX" in account.stderr
    # Mefree publishes no price: one line, exit 2, nothing sent.
    mefree = await cli(
        "quote", "--provider", "mefree", "--energy", "65000", "--provider-url", urls.mefree
    )
    assert mefree.code == 2
    no_traceback(mefree)
    assert len(mefree.stderr.strip().splitlines()) == 1
    assert sum(sandbox.catfee.charge_counts().values()) == 0
    assert sandbox.mefree.control.count() == 0


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_base_urls_from_the_environment_and_order_by_client_order_id(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    env = {
        **ENV,
        "ENERGY_ASYNC_CATFEE_URL": urls.catfee,
        "ENERGY_ASYNC_TRONGRID_URL": urls.trongrid,
    }
    target = sandbox.new_target()
    rows = tmp_path / "rows.csv"
    rows.write_text(f"to,energy,client_order_id\n{target},65000,payout-7\n")
    journal = tmp_path / "batch.journal"
    run = await cli(
        "batch", "--provider", "catfee", str(rows), "--journal", str(journal), env=env
    )  # no URL flags at all
    assert run.code == 0, run.stderr
    shown = await cli(
        "order",
        "--provider",
        "catfee",
        "--client-order-id",
        "payout-7",
        "--journal",
        str(journal),
        "--json",
        env=env,
    )
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["client_order_id"] == "payout-7"
    missing = await cli("order", "--provider", "catfee", "--client-order-id", "payout-7", env=env)
    assert missing.code == 2 and "--journal" in missing.stderr
    assert sandbox.catfee.charges("payout-7") == 1


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_max_trx_limits_a_batch_like_max_sun(served: Any, tmp_path: Path) -> None:
    sandbox, urls = served
    rows = tmp_path / "rows.csv"
    rows.write_text("to,energy\n" + "".join(f"{sandbox.new_target()},65000\n" for _ in range(5)))
    run = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--max-trx",
        "2.5",  # two orders at 1.105 TRX fit, a third does not
        "--json",
        *urls_args(urls, "catfee"),
    )
    assert run.code == 1, run.stderr
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == 5
    assert sum(1 for r in results if r["verdict"] == "DELIVERED") == 2
    assert all("sun limit" in r["not_sent"] for r in results if r["verdict"] is None)
    assert sandbox.catfee.total_charged_sun <= 2_500_000


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_a_batch_against_remote_trongrid_without_a_key_warns_of_throttling(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    rows = tmp_path / "rows.csv"
    rows.write_text(f"to,energy\n{sandbox.new_target()},65000\n")
    sandbox.catfee.control.unreachable = True  # stop right after the warning: nothing bought
    env = {k: v for k, v in ENV.items() if k != "TRONGRID_API_KEY"}
    run = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--provider-url",
        urls.catfee,
        "--trongrid-url",
        "https://api.trongrid.io",
        env=env,
    )
    assert "TRONGRID_API_KEY is not set" in run.stderr and "3 requests a second" in run.stderr
    assert run.code == 4
