"""SIGTERM during ``energy-async batch``: no new order is sent, the orders in flight settle up
to ``--grace`` (a second signal gives up on them at once), everything is journalled, and the
CLI prints the unsettled client_order_ids and the exact command that finishes the batch; exit
130. The sandbox's books say nothing was bought twice or lost, and the printed command, run as
printed, buys every remaining row exactly once.
"""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

import pytest

from energy_async.journal import EntryState, Journal
from energy_async.sandbox import Delivery, Fault, Sandbox
from tests.test_cli import ENV, SPEED, Run, cli, urls_args
from tests.test_cli_batch import rows_file, signalled_steps

pytestmark = pytest.mark.anyio

ENERGY = 65_000


def resume_words(stderr: str) -> list[str]:
    """The one printed command that finishes the batch, as argv."""
    lines = [line for line in stderr.splitlines() if line.startswith("to finish them: ")]
    assert len(lines) == 1, stderr
    return shlex.split(lines[0].removeprefix("to finish them: "))


async def run_printed(words: list[str], env: dict[str, str]) -> Run:
    assert words[:2] == ["energy-async", "batch"], words
    return await cli(*words[1:], env=env)


async def journal_states(path: Path) -> dict[str, EntryState]:
    async with await Journal.open(path, create=False) as book:
        return {entry.client_order_id: entry.state async for entry in book.iter_entries()}


@pytest.mark.slow  # two CLI runs, orders held 1.5 s at the provider: about 6 s
async def test_sigterm_lets_orders_in_flight_settle_in_the_grace_and_the_printed_resume_ends_it(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(seed=51, speed=SPEED)
    async with sandbox.serve() as urls:
        targets = [sandbox.new_target() for _ in range(6)]
        rows = rows_file(tmp_path, targets)
        with rows.open("a") as handle:  # skipped with --skip-invalid, in both runs
            handle.write(f"TNotAnAddress,{ENERGY}\n")
        journal = tmp_path / "batch.journal"
        faults = sandbox.catfee.control.faults
        # The first two creates are held 1.5 s at the provider: in flight when the signal
        # comes, settled well within the grace.
        faults.inject(Fault.LATENCY, times=2, endpoint="create", delay=1.5)
        command = [
            *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
            *("--concurrency", "2", "--grace", "20", "--skip-invalid"),
            *("--max-energy", str(6 * ENERGY)),
            *urls_args(urls, "catfee"),
        ]
        # Sent once both creates are at the provider (their faults are drawn).
        run = await signalled_steps(command, [(signal.SIGTERM, lambda _: not faults.pending())])
        assert run.code == 130, run.stderr
        assert "Traceback" not in run.stderr
        assert "SIGTERM: no new orders; waiting up to 20 s for the 2 in flight" in run.stderr
        assert "cannot be resumed" not in run.stderr  # it has a journal
        assert "unsettled client_order_ids" not in run.stderr  # both settled in the grace
        assert sandbox.catfee.control.count("create") == 2  # nothing sent after the signal
        states = await journal_states(journal)
        settled = [cid for cid, state in states.items() if state is EntryState.SETTLED]
        assert len(settled) == 2 and len(states) == 6
        assert all(
            state is EntryState.INTENDED for cid, state in states.items() if cid not in settled
        )
        async with await Journal.open(journal, create=False) as book:
            assert (await book.counts())["SETTLED:DELIVERED"] == 2
        assert sandbox.catfee.charge_counts() == dict.fromkeys(settled, 1)

        words = resume_words(run.stderr)
        for flag, value in (
            ("--provider-url", urls.catfee),
            ("--trongrid-url", urls.trongrid),
            ("--max-energy", str(6 * ENERGY)),
        ):
            assert words[words.index(flag) + 1] == value, words
        assert "--skip-invalid" in words and "--resume" in words
        # Run exactly as printed. Should it lack a URL, the environment keeps it on loopback.
        env = {
            **ENV,
            "ENERGY_ASYNC_CATFEE_URL": urls.catfee,
            "ENERGY_ASYNC_TRONGRID_URL": urls.trongrid,
        }
        again = await run_printed(words, env)
        assert again.code == 0, again.stderr
        assert "Traceback" not in again.stderr
        assert "2 of 6 orders settled" in again.stderr
        charges = sandbox.catfee.charge_counts()
        assert charges == dict.fromkeys(states, 1)  # every row bought, each once
        async with await Journal.open(journal, create=False) as book:
            assert (await book.counts())["SETTLED:DELIVERED"] == 6


@pytest.mark.slow  # a CLI run of about 1.5 s
async def test_a_second_sigterm_gives_up_at_once_and_every_order_sent_is_journalled(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(seed=52, speed=SPEED)
    async with sandbox.serve() as urls:
        targets = [sandbox.new_target() for _ in range(6)]
        for target in targets:  # in flight for as long as anyone waits
            sandbox.catfee.delivery.for_target(target, Delivery.NEVER_LANDS)
        rows = rows_file(tmp_path, targets)
        journal = tmp_path / "batch.journal"
        command = [
            *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
            *("--concurrency", "2", "--deadline", "60", "--grace", "60"),
            *urls_args(urls, "catfee"),
        ]
        run = await signalled_steps(
            command,
            [
                (signal.SIGTERM, lambda _: sandbox.catfee.control.count("create") >= 2),
                (signal.SIGTERM, lambda err: "waiting up to 60 s" in err),
            ],
        )
        assert run.code == 130, run.stderr
        assert "Traceback" not in run.stderr
        assert "SIGTERM again" in run.stderr
        assert run.after_last_signal < 5.0, run.stderr  # not the 60 s grace
        creates = sandbox.catfee.control.count("create")
        assert creates == 2  # nothing sent after the first signal
        states = await journal_states(journal)
        sent = {
            cid for cid, state in states.items() if state in (EntryState.SENT, EntryState.ORDERED)
        }
        # Every order the provider took is in the journal as sent; the rest as never sent.
        assert sent == set(sandbox.catfee.charge_counts()) and len(sent) == creates
        assert [s for s in states.values() if s is EntryState.SETTLED] == []
        assert sum(s is EntryState.INTENDED for s in states.values()) == 6 - creates
        unsettled = [
            line
            for line in run.stderr.splitlines()
            if line.startswith("unsettled client_order_ids:")
        ]
        assert len(unsettled) == 1 and set(unsettled[0].split(":", 1)[1].split()) == sent
        words = resume_words(run.stderr)
        assert words[words.index("--journal") + 1] == str(journal) and "--resume" in words
