"""``energy-async ready`` and ``energy-async buy --from --usdt-to --amount`` as scripts run them,
against a sandbox served by this test process; exit codes 0/1/2/4. Purchases run the CLI as a
subprocess; runs that buy nothing run it in this process (milliseconds, not an interpreter)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from energy_async.energy import sun_for_energy
from energy_async.sandbox import Sandbox, SandboxURLs
from energy_async.sandbox.chain import TOTAL_ENERGY_LIMIT
from energy_async.sandbox.trc20 import USDT
from tests import test_cli

pytestmark = pytest.mark.anyio

TRX = 1_000_000
Cli = Callable[..., Awaitable[tuple[int, str, str]]]


async def cli(*args: str) -> tuple[int, str, str]:
    """The CLI as a subprocess."""
    run = await test_cli.cli(*args)
    test_cli.no_traceback(run)
    return run.code, run.stdout, run.stderr


@pytest.fixture
def quick(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI in this process, for runs that buy nothing."""
    inproc = test_cli.in_process_cli(capsys, monkeypatch)

    async def run(*args: str) -> tuple[int, str, str]:
        done = await inproc(*args)
        test_cli.no_traceback(done)
        return done.code, done.stdout, done.stderr

    return run


@pytest.fixture
async def served() -> AsyncIterator[tuple[Sandbox, SandboxURLs]]:
    sandbox = Sandbox(seed=3, speed=30.0)  # a block every 0.1 s
    async with sandbox.serve() as urls:
        yield sandbox, urls


def sender(sandbox: Sandbox, *, energy: int = 0, trx: int = 50) -> str:
    chain = sandbox.chain
    stake = sun_for_energy(energy, TOTAL_ENERGY_LIMIT, chain.total_energy_weight) if energy else 0
    address = chain.new_account(balance_sun=trx * TRX, energy_stake_sun=stake)
    chain.trc20.mint(USDT, address, 100 * TRX)
    return address


def holder(sandbox: Sandbox) -> str:
    address = sandbox.chain.new_address()
    sandbox.chain.trc20.mint(USDT, address, 1)
    return address


def transfer_args(urls: SandboxURLs, sender: str, to: str, amount: str = "12.5") -> list[str]:
    return ["--from", sender, "--usdt-to", to, "--amount", amount, "--trongrid-url", urls.trongrid]


async def test_ready_exits_0_with_the_fee_limit(served: Any, quick: Cli) -> None:
    sandbox, urls = served
    code, out, err = await quick(
        "ready", *transfer_args(urls, sender(sandbox, energy=70_000), holder(sandbox)), "--json"
    )
    answer = json.loads(out)
    assert code == 0 and answer["state"] == "READY"
    assert answer["fee_limit_sun"] == 7_714_200 and answer["energy_needed"] == 64_285
    assert "caps ALL the energy" in err and err.startswith("READY")


async def test_not_ready_exits_1_and_says_what_is_missing(served: Any, quick: Cli) -> None:
    sandbox, urls = served
    code, out, err = await quick(
        "ready", *transfer_args(urls, sender(sandbox), sandbox.chain.new_address())
    )
    assert code == 1 and out == ""
    assert "NOT_READY" in err and "130,285 missing" in err


@pytest.mark.parametrize(
    ("amount", "token", "words"),
    [
        ("12.1234567", None, "more decimals"),
        ("-3", None, "positive"),
        ("1", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u", "checksum"),
        ("1", "new", "no contract"),
        ("1", "", "address is empty"),  # never USDT by default
    ],
)
async def test_bad_input_exits_2_with_one_line(
    served: Any, quick: Cli, amount: str, token: str | None, words: str
) -> None:
    sandbox, urls = served
    args = transfer_args(urls, sender(sandbox), holder(sandbox), amount)
    if token is not None:
        args += ["--token", sandbox.chain.new_address() if token == "new" else token]
    code, out, err = await quick("ready", *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert words in err


@pytest.mark.slow  # the verifier's retries back off for about 4 s before giving up
async def test_trongrid_down_exits_4(served: Any, quick: Cli) -> None:
    sandbox, urls = served
    args = transfer_args(urls, sender(sandbox), holder(sandbox))
    sandbox.trongrid.unreachable = True
    code, _, err = await quick("ready", *args)
    assert code == 4 and "nothing was bought" in err


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_buy_for_a_transfer_buys_the_shortfall_and_ends_ready(served: Any) -> None:
    sandbox, urls = served
    address = sender(sandbox)
    code, out, err = await cli(
        "buy",
        "--provider",
        "catfee",
        "--provider-url",
        urls.catfee,
        "--deadline",
        "20",
        *transfer_args(urls, address, holder(sandbox)),
        "--json",
    )
    answer = json.loads(out)
    assert code == 0, err
    assert answer["verdict"] == "DELIVERED" and answer["ready"] is True
    assert answer["purchase"] == {"energy": 65_000, "transfers": None}
    assert answer["before"]["energy_missing"] == 64_285 and answer["after"]["energy_missing"] == 0
    assert sandbox.catfee.charges(answer["result"]["client_order_id"]) == 1


async def test_buy_for_a_ready_transfer_buys_nothing(served: Any, quick: Cli) -> None:
    sandbox, urls = served
    code, out, err = await quick(
        "buy",
        "--provider",
        "mefree",
        "--provider-url",
        urls.mefree,
        *transfer_args(urls, sender(sandbox, energy=70_000), holder(sandbox)),
        "--json",
    )
    answer = json.loads(out)
    assert code == 0 and "nothing bought" in err
    assert answer["purchase"] is None and answer["verdict"] is None and answer["ready"] is True
    assert sandbox.mefree.control.count("create") == 0


async def test_buy_refuses_a_transfer_mixed_with_an_energy_order(served: Any, quick: Cli) -> None:
    sandbox, urls = served
    code, _, err = await quick(
        "buy",
        "--provider",
        "catfee",
        "--energy",
        "65000",
        *transfer_args(urls, sender(sandbox), holder(sandbox)),
    )
    assert code == 2 and "--usdt-to" in err
    assert sandbox.catfee.control.count() == 0
