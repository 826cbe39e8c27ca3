"""``batch --provider auto`` in a child process against the sandbox, killed and resumed.

The route is chosen once per batch and journalled with every order (the entry's provider, the
result's ``evidence.route``); ``--resume`` continues at the provider that holds the orders,
whatever the quotes say by then, so an order that may have been sent is never re-routed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from energy_async.journal import EntryState, Journal
from energy_async.sandbox import Fault, Sandbox, SandboxURLs

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

ROWS = 6
SPEED = 20.0  # a block every 0.15 s


def environment(sandbox: Sandbox, urls: SandboxURLs) -> dict[str, str]:
    env = {**os.environ, "ENERGY_ASYNC_TRONGRID_URL": urls.trongrid}
    for name, sim in sandbox.providers.items():
        prefix = name.upper()
        env[f"{prefix}_API_KEY"] = sim.api_key
        if sim.api_secret:
            env[f"{prefix}_API_SECRET"] = sim.api_secret
        env[f"ENERGY_ASYNC_{prefix}_URL"] = urls.provider(name)
    return env


def creates(sandbox: Sandbox) -> dict[str, int]:
    return {name: sim.control.count("create") for name, sim in sandbox.providers.items()}


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_auto_batch_is_journalled_at_its_provider_and_resumed_there(tmp_path: Path) -> None:
    sandbox = Sandbox(seed=12, speed=SPEED)
    rows = tmp_path / "orders.csv"
    targets = [sandbox.new_target() for _ in range(ROWS)]
    rows.write_text("to,energy\n" + "".join(f"{target},65000\n" for target in targets))
    journal_path = tmp_path / "batch.journal"
    command = [
        sys.executable,
        "-m",
        "energy_async",
        "batch",
        "--provider",
        "auto",
        str(rows),
        "--journal",
        str(journal_path),
        "--concurrency",
        "2",
        "--deadline",
        "20",
        "--json",
    ]
    async with sandbox.serve() as urls:
        env = environment(sandbox, urls)
        first_out = tmp_path / "first.out"
        with first_out.open("wb") as out:
            async with await anyio.open_process(command, stdout=out, stderr=out, env=env) as child:
                with anyio.fail_after(60):
                    while sum(creates(sandbox).values()) == 0:  # noqa: ASYNC110 (no event)
                        await anyio.sleep(0.01)
                child.send_signal(signal.SIGKILL)
                await child.wait()
        chosen = next(name for name, n in creates(sandbox).items() if n)
        async with await Journal.open(journal_path, create=False) as journal:
            entries = [entry async for entry in journal.iter_entries()]
        assert {entry.provider for entry in entries} == {chosen}
        assert any(entry.state is not EntryState.SETTLED for entry in entries)
        # By now the chosen provider cannot even quote: a router would pick another one.
        sandbox.providers[chosen].control.faults.set_rate(
            Fault.SERVER_ERROR, 1.0, endpoint="estimate"
        )
        resumed = await anyio.run_process([*command, "--resume"], env=env, check=False)
        async with await Journal.open(journal_path, create=False) as journal:
            entries = [entry async for entry in journal.iter_entries()]

    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert {name for name, n in creates(sandbox).items() if n} == {chosen}
    sim = sandbox.providers[chosen]
    charged = [order.receiver for order in sim.orders.values()]
    assert sorted(charged) == sorted(targets)  # every row bought once, at the chosen one
    assert len(entries) == ROWS
    assert all(entry.state is EntryState.SETTLED for entry in entries)
    assert all(entry.provider == chosen for entry in entries)
    for entry in entries:
        assert entry.result is not None and entry.result.evidence.route
        assert chosen in entry.result.evidence.route[-1]
    assert b"provider for this batch: " + chosen.encode() in first_out.read_bytes()
