"""``energy-async batch`` when the world around it fails mid-flight: a reader that goes away,
a journal that cannot grow, a limit reached before a resume, an interrupted run finished by
the command it printed. Each runs the CLI as a subprocess against a sandbox served here and
checks the exit code, the one-line error, the journal and the sandbox's charge books.
"""

from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from energy_async.journal import Journal
from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox
from tests.test_cli import ENV, SPEED, cli, no_traceback, urls_args
from tests.test_cli_batch import bought_once_each, read_first_line, rows_file, signalled

pytestmark = pytest.mark.anyio

BLOCK_EVERY = 0.02  # real seconds per block while a test moves the frozen chain


@pytest.fixture
async def frozen() -> Any:
    """A sandbox whose chain stands still (speed 0) until the test moves it: orders sent stay
    in flight, no delivery can land, for exactly as long as the test needs."""
    sandbox = Sandbox(seed=41, speed=0.0)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@asynccontextmanager
async def blocks_running(sandbox: Sandbox) -> AsyncIterator[None]:
    """The chain moves on (a block every `BLOCK_EVERY` s) while the body runs."""

    async def tick() -> None:
        while True:
            await anyio.sleep(BLOCK_EVERY)
            sandbox.advance_blocks(1)

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        yield
        group.cancel_scope.cancel()


async def journal_books(journal: Path) -> tuple[dict[str, int], list[str]]:
    """The journal's state counts and every client_order_id it holds."""
    async with await Journal.open(journal, create=False) as book:
        counts = await book.counts()
        ids = [entry.client_order_id async for entry in book.iter_entries()]
    return counts, ids


# --- 1. a closed stderr stops the drawing, not the buying --------------------------------------


@pytest.mark.slow  # about 4 s: an interpreter start and six orders
async def test_stdout_and_stderr_closed_mid_flight_stop_the_printing_not_the_buying(
    frozen: Any, tmp_path: Path
) -> None:
    """``batch --json ... 2>&1 | head -1``: both streams on one pipe that really closes (an
    `os.pipe` end closed here; anyio's ``aclose`` would only stop reading it) while two orders
    are in flight and four are not sent yet. Every later write, the progress line included,
    hits EPIPE; the batch goes on, settles and journals all six, and exits as a run whose
    orders were all DELIVERED does (0), whoever read its output."""
    sandbox, urls = frozen
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(6)])
    journal = tmp_path / "batch.journal"
    command = [
        *(sys.executable, "-m", "energy_async", "batch", "--provider", "catfee", str(rows)),
        *("--json", "--concurrency", "2", "--journal", str(journal)),
        *urls_args(urls, "catfee"),
    ]
    read_end, write_end = os.pipe()
    try:
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, env=ENV
        )
    finally:
        os.close(write_end)
    async with process:
        with anyio.fail_after(30):
            first = await anyio.to_thread.run_sync(read_first_line, read_end)
            assert first, "the batch printed nothing"
            # The chain stands still: the first two orders are out and cannot settle yet.
            while sandbox.catfee.control.count("create") < 2:  # noqa: ASYNC110 - no event
                await anyio.sleep(0.01)
        os.close(read_end)  # `| head -1` is done reading
        assert sum(sandbox.catfee.charge_counts().values()) == 2  # four rows still to send
        async with blocks_running(sandbox):
            with anyio.fail_after(60):
                code = await process.wait()
    assert code == 0
    counts, ids = await journal_books(journal)
    assert len(ids) == 6
    assert counts["SETTLED"] == counts["SETTLED:DELIVERED"] == 6, counts
    bought_once_each(sandbox, ids)


# --- 2. the printed --resume command is the whole command --------------------------------------


@pytest.mark.slow  # about 5 s: an interrupted run and the resume it printed
async def test_the_printed_resume_command_keeps_every_option_and_finishes_the_batch(
    frozen: Any, tmp_path: Path
) -> None:
    """Ctrl-C with two orders in flight on a frozen chain and six rows not sent; the command
    printed to finish the batch is taken as it is (`shlex.split`) and run. It keeps the base
    URLs, --skip-invalid (without it the bad row refuses the file: exit 2), the limits, the
    deadline, concurrency and grace (not --token: a payout file's, refused for these rows); it
    finishes the batch, each row bought once."""
    sandbox, urls = frozen
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(7)])
    with rows.open("a") as handle:
        handle.write("TNotAnAddress,65000\n")
    journal = tmp_path / "batch journal"  # a space: the command must quote it
    options = {
        "--provider-url": urls.catfee,
        "--trongrid-url": urls.trongrid,
        "--journal": str(journal),
        "--concurrency": "2",
        "--deadline": "60.0",
        "--grace": "0.5",
        "--max-energy": str(20 * 65_000),
        "--max-trx": "100",
        "--max-sun-per-hour": str(10**12),
    }
    command = [
        *("batch", "--provider", "catfee", str(rows), "--skip-invalid"),
        *(word for pair in options.items() for word in pair),
    ]
    code, text = await signalled(
        command, signal.SIGINT, when=lambda: sandbox.catfee.control.count("create") >= 2
    )
    assert code == 130, text
    assert "Traceback" not in text
    printed = [line for line in text.splitlines() if line.startswith("to finish them: ")]
    assert len(printed) == 1, text
    words = shlex.split(printed[0].removeprefix("to finish them: "))
    assert words[:2] == ["energy-async", "batch"] and words[-1] == "--resume"
    assert str(rows) in words and "--skip-invalid" in words
    assert {flag: words[words.index(flag) + 1] for flag in options} == options
    assert not any(secret in printed[0] for secret in (CATFEE_API_KEY, CATFEE_API_SECRET))
    counts, ids = await journal_books(journal)
    assert counts["INTENDED"] == 5 and counts["SENT"] + counts["ORDERED"] == 2, counts

    async with blocks_running(sandbox):
        finish = await cli(*words[1:])  # `energy-async` is `python -m energy_async` here
    assert finish.code == 0, finish.stderr
    no_traceback(finish)
    counts, ids = await journal_books(journal)
    assert len(ids) == 7  # every good row of the file
    assert counts["SETTLED"] == counts["SETTLED:DELIVERED"] == 7, counts
    bought_once_each(sandbox, ids)


# --- 3. a resumed batch shares its budget with the runs before it ------------------------------

PRICE_SUN = 1_105_000  # the sandbox CatFee's price of one 65,000-energy hour


@pytest.fixture
async def running() -> Any:
    sandbox = Sandbox(seed=41, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@pytest.mark.slow  # about 4 s per case: a run stopped by its limit, and its resume
@pytest.mark.parametrize(
    ("limit", "value", "says"),
    [
        pytest.param(
            "--max-energy",
            str(2 * 65_000),
            "energy limit reached: 130,000 of 130,000 spent",
            id="energy",
        ),
        pytest.param(
            "--max-sun",
            str(2 * PRICE_SUN + PRICE_SUN // 2),
            "sun limit reached: 2,210,000",
            id="sun",
        ),
    ],
)
async def test_resume_counts_what_earlier_runs_spent_against_the_total_limit(
    running: Any, tmp_path: Path, limit: str, value: str, says: str
) -> None:
    """The first run stops at the limit after two orders; `--resume` with the same limit
    sends nothing more and says why (it used to seed only the per-hour limits from the
    journal, so the total budget was spent again: four orders for a limit of two)."""
    sandbox, urls = running
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(5)])
    journal = tmp_path / "batch.journal"
    command = [
        *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
        *("--concurrency", "1", limit, value, *urls_args(urls, "catfee")),
    ]
    first = await cli(*command)
    assert first.code == 1, first.stderr  # rows not sent because of a limit
    no_traceback(first)
    assert says in first.stderr
    assert sum(sandbox.catfee.charge_counts().values()) == 2
    creates = sandbox.catfee.control.count("create")

    again = await cli(*command, "--resume")
    assert sandbox.catfee.control.count("create") == creates  # nothing more was sent
    charges = sandbox.catfee.charge_counts()
    assert again.code == 1, again.stderr
    no_traceback(again)
    assert says in again.stderr and "by earlier runs of this batch" in again.stderr
    assert "not sent: 3 row(s)" in again.stderr
    assert sorted(charges.values()) == [1, 1]
    books = {"--max-energy": 65_000 * len(charges), "--max-sun": sandbox.catfee.total_charged_sun}
    assert books[limit] <= int(value)  # the whole batch, both runs, within the one limit
    counts, ids = await journal_books(journal)
    assert len(ids) == 5 and counts["SETTLED:DELIVERED"] == 2 and counts["INTENDED"] == 3


# --- 4. a journal that cannot be written: one line, and --resume finishes the batch ------------

# Bytes a file of the batch may grow to (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a write past
# it fails with EFBIG and SQLite says "disk I/O error"). At concurrency 1 with these six rows,
# the journal's writes fall the same way each run: at 90,000 bytes the first order settles and
# is journalled, and the second one's order (sent, and charged) cannot be recorded. Below about
# 86,500 or above about 94,700 the failure falls on another write (a failure on the journal's
# close is tests/test_journal_full_disk.py's).
JOURNAL_LIMIT = 90_000


@pytest.mark.slow  # about 4 s: the failing run and its resume
async def test_a_journal_that_cannot_grow_is_one_journal_line_and_resume_buys_each_row_once(
    running: Any, tmp_path: Path
) -> None:
    sandbox, urls = running
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(6)])
    journal = tmp_path / "batch.journal"
    command = [
        *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
        *("--concurrency", "1", *urls_args(urls, "catfee")),
    ]

    def limited() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "energy_async", *command],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_FSIZE, (JOURNAL_LIMIT, JOURNAL_LIMIT)
            ),
        )

    failed = await anyio.to_thread.run_sync(limited)  # the sandbox serves from this loop
    counts, ids = await journal_books(journal)
    assert counts["SETTLED"] >= 1 and counts["INTENDED"] >= 1, (
        f"JOURNAL_LIMIT no longer fails the journal after a few rows: {counts}"
    )
    assert failed.returncode == 3, failed.stderr  # an order in flight is UNKNOWN (README)
    assert "Traceback" not in failed.stderr
    assert "ExceptionGroup" not in failed.stderr and "TaskGroup" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("energy-async:")]
    assert len(errors) == 1, failed.stderr
    assert "journal error" in errors[0] and str(journal) in errors[0]
    assert "UNKNOWN: journal write failed: disk I/O error" in failed.stderr
    assert "unexpected error" not in failed.stderr
    bought = sum(sandbox.catfee.charge_counts().values())
    assert 1 <= bought < len(ids) == 6

    # No limit now: the journal can grow again. (The last --concurrency given wins.)
    finish = await cli(*command, "--resume", "--concurrency", "5")
    assert finish.code == 0, finish.stderr
    no_traceback(finish)
    counts, ids = await journal_books(journal)
    assert len(ids) == 6 and counts["SETTLED:DELIVERED"] == 6, counts
    bought_once_each(sandbox, ids)


# --- a --report file that cannot be written -------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.slow  # about 3 s: three orders bought and verified
async def test_a_report_file_on_a_full_disk_is_one_line_and_every_order_settles(
    running: Any, tmp_path: Path
) -> None:
    sandbox, urls = running
    targets = [sandbox.new_target() for _ in range(3)]
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    done = await cli(
        *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
        *("--report", "/dev/full", *urls_args(urls, "catfee")),  # every write: ENOSPC
    )
    no_traceback(done)
    assert done.code == 0, done.stderr  # every order DELIVERED; only the report is lost
    said = [line for line in done.stderr.splitlines() if "--report" in line]
    assert said == [
        "energy-async: --report /dev/full could not be written (No space left on device)"
    ]
    counts, ids = await journal_books(journal)
    assert counts["SETTLED:DELIVERED"] == 3
    bought_once_each(sandbox, ids)
