"""``energy-async batch`` with a payout file (``from,usdt_to,amount``): one order per sender for
exactly what its transfers lack, nothing for a sender that is ready or that energy cannot help,
and a resume that never plans (or buys) a sender twice. Against the sandbox's chain and CatFee.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from energy_async.energy import sun_for_energy
from energy_async.journal import Journal
from energy_async.readiness import USDT
from energy_async.sandbox import Sandbox
from energy_async.sandbox.chain import TOTAL_ENERGY_LIMIT
from energy_async.sandbox.trc20 import ENERGY_TO_HOLDER
from tests.test_cli import SPEED, cli, in_process_cli, no_traceback, urls_args

pytestmark = pytest.mark.anyio

TRX = 1_000_000
HOLDER, _ = ENERGY_TO_HOLDER


@pytest.fixture
async def served() -> Any:
    sandbox = Sandbox(seed=47, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


def sender(sandbox: Sandbox, *, energy: int = 0, usdt: int = 1_000) -> str:
    chain = sandbox.chain
    stake = sun_for_energy(energy, TOTAL_ENERGY_LIMIT, chain.total_energy_weight) if energy else 0
    address = chain.new_account(balance_sun=100 * TRX, energy_stake_sun=stake)
    if usdt:
        chain.trc20.mint(USDT, address, usdt * TRX)
    return address


def holder(sandbox: Sandbox) -> str:
    address = sandbox.chain.new_address()
    sandbox.chain.trc20.mint(USDT, address, 1)
    return address


def payouts(tmp_path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "payouts.csv"
    path.write_text("from,usdt_to,amount\n" + "".join(f"{a},{b},{n}\n" for a, b, n in rows))
    return path


async def batch(urls: Any, path: Path, *args: str) -> Any:
    return await cli("batch", str(path), "--json", *args, *urls_args(urls, "catfee"))


@pytest.mark.slow  # three CLI runs against a chain at x30
async def test_a_payout_file_buys_each_sender_exactly_what_it_lacks_once(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    busy, ready, broke = sender(sandbox), sender(sandbox, energy=70_000), sender(sandbox, usdt=0)
    rows = [
        (busy, holder(sandbox), "5"),  # line 2
        (ready, holder(sandbox), "1"),  # line 3: its own 70,000 energy cover 64,285
        (busy, holder(sandbox), "7.25"),  # line 4: the same sender's second transfer
        (broke, holder(sandbox), "2"),  # line 5: holds no USDT, the transfer would revert
    ]
    path = payouts(tmp_path, rows)
    journal = tmp_path / "payouts.journal"
    run = await batch(urls, path, "--provider", "catfee", "--journal", str(journal))
    no_traceback(run)
    assert run.code == 1, run.stderr  # one sender cannot be helped: not every row will land
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    not_sent = {row["to"]: row for row in lines if row["verdict"] is None}
    assert set(not_sent) == {ready, broke}
    assert not_sent[ready]["not_sent"].startswith("ready:") and not_sent[ready]["lines"] == [3]
    assert "WOULD_REVERT" in not_sent[broke]["not_sent"]
    (bought,) = [row for row in lines if row["verdict"] is not None]
    assert bought["verdict"] == "DELIVERED" and bought["request"]["target"] == busy
    assert bought["request"]["energy"] == 2 * HOLDER  # both transfers, minus nothing it had
    assert bought["client_order_id"].endswith("-2")  # the sender's first row
    assert sandbox.catfee.charge_counts() == {bought["client_order_id"]: 1}
    assert "payouts: 4 transfer(s) from 3 sender(s): 1 to buy for" in run.stderr

    # A resume plans nothing the journal holds and buys nothing again.
    again = await batch(urls, path, "--provider", "catfee", "--journal", str(journal), "--resume")
    no_traceback(again)
    assert sandbox.catfee.charge_counts() == {bought["client_order_id"]: 1}
    async with await Journal.open(journal, create=False) as book:
        assert (await book.counts())["SETTLED"] == 1

    # The busy sender is ready now: a fresh run over the same file buys nothing at all.
    fresh = await batch(urls, path, "--provider", "catfee")
    no_traceback(fresh)
    assert sandbox.catfee.charge_counts() == {bought["client_order_id"]: 1}
    statuses = {row["to"]: row["not_sent"] for row in map(json.loads, fresh.stdout.splitlines())}
    assert statuses[busy].startswith("ready:")


@pytest.fixture
def inproc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    return in_process_cli(capsys, monkeypatch)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("from,usdt_to\n", "a payout file's first line must be a CSV header with 'from'"),
        ("from,usdt_to,amount,energy\n", "unknown column(s) energy"),
        ("from,usdt_to,amount\nTXYZ,TXYZ,1\n", "line 2:"),
        ("from,usdt_to,amount\n{a},{a},-1\n", "amount must be a positive number, got '-1'"),
        ("from,usdt_to,amount\n{a},{a},NaN\n", "amount must be a positive number"),
        ("from,usdt_to,amount\n", "has no rows to buy for"),
    ],
)
async def test_a_bad_payout_file_is_refused_in_one_line_and_nothing_is_read(
    inproc: Any, tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "payouts.csv"
    path.write_text(text.format(a="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"))
    # Nothing listens at these URLs: a run that read the chain or a provider would fail there.
    run = await inproc(
        "batch", "--provider", "catfee", str(path),
        "--provider-url", "http://127.0.0.1:9", "--trongrid-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert run.code == 2, run.stderr
    assert says in run.stderr and "Traceback" not in run.stderr


async def test_a_payout_file_with_a_shared_journal_is_refused_before_anything_is_read(
    inproc: Any, tmp_path: Path
) -> None:
    path = tmp_path / "payouts.csv"
    address = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    path.write_text(f"from,usdt_to,amount\n{address},{address},1\n")
    run = await inproc(
        "batch", "--provider", "catfee", str(path), "--journal", "postgresql://u@127.0.0.1:9/db",
        "--provider-url", "http://127.0.0.1:9", "--trongrid-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert run.code == 2, run.stderr
    assert "a payout file is planned against the chain" in run.stderr
