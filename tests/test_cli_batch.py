"""``energy-async batch`` as a user meets it when things go wrong: every row ends delivered,
settled otherwise (with why), or still to do and finished by ``--resume``; every failure is one
line and its documented exit code; the sandbox's books say nothing was bought twice or lost.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from energy_async.journal import Journal
from energy_async.sandbox import Delivery, Fault, Sandbox, SandboxURLs
from tests.test_cli import (
    ENV,
    SPEED,
    Run,
    cli,
    in_process_cli,
    no_traceback,
    urls_args,
)

pytestmark = pytest.mark.anyio

ENERGY = 65_000


@pytest.fixture
async def served() -> Any:
    sandbox = Sandbox(seed=41, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@pytest.fixture
def inproc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    return in_process_cli(capsys, monkeypatch)


def one_line(run: Run) -> str:
    no_traceback(run)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def rows_file(tmp_path: Path, targets: list[str], name: str = "rows.csv") -> Path:
    rows = tmp_path / name
    rows.write_text("to,energy\n" + "".join(f"{t},{ENERGY}\n" for t in targets))
    return rows


async def batch(
    urls: SandboxURLs, rows: Path, *args: str, env: dict[str, str] | None = None
) -> Run:
    return await cli(
        "batch", "--provider", "catfee", str(rows), *args, *urls_args(urls, "catfee"), env=env
    )


def outcomes(run: Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in run.stdout.splitlines()]


def bought_once_each(sandbox: Sandbox, ids: list[str]) -> None:
    charges = sandbox.catfee.charge_counts()
    assert {cid: charges.get(cid, 0) for cid in ids} == dict.fromkeys(ids, 1), charges
    assert sum(charges.values()) == len(ids), charges  # nothing else bought either


@dataclass(frozen=True)
class Signalled:
    code: int
    stderr: str
    stdout: str
    after_last_signal: float  # seconds from the last signal sent to the process's exit


async def signalled_steps(
    command: Sequence[str],
    steps: Sequence[tuple[signal.Signals, Callable[[str], bool]]],
    *,
    env: dict[str, str] | None = None,
    limit: float = 30.0,
) -> Signalled:
    """Run the CLI and, for each step in turn, send its signal once ``when(stderr so far)``
    holds (the sandbox's books are read through the closure); its exit code and output."""
    async with await anyio.open_process(
        [sys.executable, "-m", "energy_async", *command], env=env or ENV
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        err, out = bytearray(), bytearray()

        async def drain(stream: Any, into: bytearray) -> None:
            async for chunk in stream:
                into.extend(chunk)

        async with anyio.create_task_group() as group:
            group.start_soon(drain, process.stderr, err)
            group.start_soon(drain, process.stdout, out)
            with anyio.fail_after(limit):
                sent_at = anyio.current_time()
                for signum, when in steps:
                    # The sandbox offers no event to wait on: its books are polled.
                    while not when(err.decode(errors="replace")):
                        assert process.returncode is None, f"exited before {signum.name}: {err!r}"
                        await anyio.sleep(0.01)
                    process.send_signal(signum)
                    sent_at = anyio.current_time()
                code = await process.wait()
            ended = anyio.current_time()
    return Signalled(code, err.decode(), out.decode(), ended - sent_at)


async def signalled(
    command: list[str], signum: signal.Signals, *, when: Callable[[], bool]
) -> tuple[int, str]:
    """Run the CLI, send it ``signum`` once ``when()`` holds; its exit code and stderr."""
    run = await signalled_steps(command, [(signum, lambda _: when())])
    return run.code, run.stderr


# --- 1. journal states: UNKNOWN, not sent and unsettled are finished by --resume ---------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_unknown_rows_are_not_settled_and_resume_buys_each_exactly_once(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(3)]
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    # Every create fails with a 500 until the deadline: the outcome of each is unknown.
    sandbox.catfee.control.faults.inject(Fault.SERVER_ERROR, times=100_000, endpoint="create")
    first = await batch(urls, rows, "--journal", str(journal), "--deadline", "1.5", "--json")
    assert first.code == 3, first.stderr
    no_traceback(first)
    results = outcomes(first)
    assert [r["verdict"] for r in results] == ["UNKNOWN"] * 3
    ids = [r["client_order_id"] for r in results]
    for cid in ids:  # the human output names every UNKNOWN order and how to finish it
        assert cid in first.stderr
    assert "--resume" in first.stderr
    assert sum(sandbox.catfee.charge_counts().values()) == 0

    sandbox.catfee.control.faults.clear()
    again = await batch(urls, rows, "--journal", str(journal), "--resume", "--json")
    assert again.code == 0, again.stderr
    assert "0 of 3 orders settled" in again.stderr
    assert sorted(r["verdict"] for r in outcomes(again)) == ["DELIVERED"] * 3
    bought_once_each(sandbox, ids)
    # Finished: a third run buys nothing and says so.
    third = await batch(urls, rows, "--journal", str(journal), "--resume", "--json")
    assert third.code == 0, third.stderr
    assert "3 of 3 orders settled" in third.stderr
    bought_once_each(sandbox, ids)


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_rows_not_sent_because_trongrid_was_down_are_sent_by_resume(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(3)]
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    sandbox.trongrid.unreachable = True
    first = await batch(urls, rows, "--journal", str(journal), "--json")
    assert first.code == 4, first.stderr
    no_traceback(first)
    results = outcomes(first)
    assert len(results) == 3
    assert all(r["verdict"] is None and r["not_sent"] for r in results), results
    assert sum(sandbox.catfee.charge_counts().values()) == 0

    sandbox.trongrid.unreachable = False
    again = await batch(urls, rows, "--journal", str(journal), "--resume", "--json")
    assert again.code == 0, again.stderr
    bought_once_each(sandbox, [r["client_order_id"] for r in results])


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_a_provider_down_from_the_start_is_exit_4_and_resume_buys_every_row_once(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(3)])
    journal = tmp_path / "batch.journal"
    sandbox.catfee.control.unreachable = True
    first = await batch(urls, rows, "--journal", str(journal))
    assert first.code == 4, first.stderr
    assert "nothing" in one_line_of_error(first)
    sandbox.catfee.control.unreachable = False
    creates_before = sandbox.catfee.control.count("create")
    assert creates_before == 0
    again = await batch(urls, rows, "--journal", str(journal), "--resume", "--json")
    assert again.code == 0, again.stderr
    # Every row of the input file, not just the ones the resume talked about, bought once.
    targets = [line.split(",")[0] for line in rows.read_text().splitlines()[1:]]
    assert len(targets) == 3
    async with await Journal.open(journal, create=False) as book:
        by_target = {
            entry.request.target: entry.client_order_id async for entry in book.iter_entries()
        }
    assert sorted(by_target) == sorted(targets)
    bought_once_each(sandbox, [by_target[target] for target in targets])
    assert sorted(r["client_order_id"] for r in outcomes(again)) == sorted(by_target.values())


def read_first_line(fd: int) -> bytes:
    """Block until a whole first line has come through the pipe ``fd`` (run it in a thread)."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


def one_line_of_error(run: Run) -> str:
    """The error line of a run that printed a line of progress before it."""
    no_traceback(run)
    errors = [line for line in run.stderr.splitlines() if line.startswith("energy-async:")]
    assert len(errors) == 1, run.stderr
    return errors[0]


@pytest.mark.parametrize("kind", ["empty", "sqlite-empty", "foreign", "wal-less"])
async def test_resume_refuses_a_file_it_did_not_write_and_buys_nothing(
    served: Any, tmp_path: Path, kind: str, inproc: Any
) -> None:
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(2)])
    journal = tmp_path / "batch.journal"
    if kind == "empty":
        journal.write_bytes(b"")
    elif kind == "sqlite-empty":
        import sqlite3

        db = sqlite3.connect(journal)
        db.execute("CREATE TABLE t (x)")
        db.execute("DROP TABLE t")
        db.commit()
        db.close()
    elif kind == "foreign":
        journal.write_text("to,energy\n")
    else:
        original = tmp_path / "original.journal"
        book = await Journal.open(original)
        try:
            await book.run_id("r1")
            shutil.copyfile(original, journal)  # the main file only, while in use
        finally:
            await book.aclose()
    before = journal.read_bytes()
    run = await inproc(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--journal",
        str(journal),
        "--resume",
        *urls_args(urls, "catfee"),
    )
    assert run.code == 2, run.stderr
    line = one_line(run)
    assert str(journal) in line
    assert journal.read_bytes() == before
    assert sandbox.catfee.control.count() == 0  # not even a read: nothing bought


# --- 2. one line, never a traceback --------------------------------------------------------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_wrong_credentials_stop_a_batch_in_one_line_with_exit_2(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(3)])
    env = {**ENV, "CATFEE_API_SECRET": "not-the-secret"}
    run = await batch(urls, rows, "--journal", str(tmp_path / "j"), env=env)
    assert run.code == 2, run.stderr
    assert "credentials" in one_line_of_error(run)
    assert "not-the-secret" not in run.stderr
    assert sandbox.catfee.control.count("create") == 0
    assert sandbox.catfee.total_charged_sun == 0


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_a_closed_stdout_stops_printing_not_buying(served: Any, tmp_path: Path) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(6)]
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    command = [
        sys.executable,
        "-m",
        "energy_async",
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--json",
        "--concurrency",
        "2",
        "--journal",
        str(journal),
        *urls_args(urls, "catfee"),
    ]
    # A pipe this test really closes: anyio's `aclose` of a process stream only stops reading
    # it, the pipe stays open and the batch would never see EPIPE.
    read_end, write_end = os.pipe()
    try:
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, stdout=write_end, env=ENV
        )
    finally:
        os.close(write_end)
    async with process:
        assert process.stderr is not None
        with anyio.fail_after(30):
            first = await anyio.to_thread.run_sync(read_first_line, read_end)
        assert b'"verdict"' in first
        os.close(read_end)  # `| head -1`
        stderr = b""
        async for chunk in process.stderr:
            stderr += chunk
        code = await process.wait()
    assert b"Traceback" not in stderr, stderr.decode()
    assert b"BrokenPipe" not in stderr
    assert code == 0, stderr.decode()
    async with await Journal.open(journal, create=False) as book:
        counts = await book.counts()
    assert counts["SETTLED:DELIVERED"] == 6
    assert sum(sandbox.catfee.charge_counts().values()) == 6


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--deadline", "nan"], "deadline"),
        (["--deadline", "inf"], "deadline"),
        (["--deadline", "-1"], "deadline"),
        (["--concurrency", "0"], "concurrency"),
        (["--max-trx", "-2"], "max-trx"),
        (["--max-sun", "0"], "max-sun"),
    ],
)
async def test_bad_batch_options_are_one_line_exit_2(
    served: Any, tmp_path: Path, args: list[str], says: str, inproc: Any
) -> None:
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target()])
    run = await inproc(
        "batch", "--provider", "catfee", str(rows), *args, *urls_args(urls, "catfee")
    )
    assert run.code == 2
    assert says in one_line(run)
    assert sandbox.catfee.control.count() == 0


@pytest.mark.parametrize(
    ("url", "secret"),
    [("http://[::1", None), ("https://user:pw@example.com", "pw"), ("https://x.io/?key=s3", "s3")],
)
async def test_a_malformed_or_secret_carrying_url_is_one_line_and_not_echoed(
    served: Any, tmp_path: Path, url: str, secret: str | None, inproc: Any
) -> None:
    sandbox, _ = served
    rows = rows_file(tmp_path, [sandbox.new_target()])
    run = await inproc("batch", "--provider", "catfee", str(rows), "--provider-url", url)
    assert run.code == 2
    line = one_line(run)
    assert "base_url" in line
    if secret is not None:
        assert secret not in line


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_sandbox_on_a_busy_or_impossible_port_is_one_line_exit_2() -> None:
    impossible = await cli("sandbox", "--port", "99999")
    assert impossible.code == 2 and "port" in one_line(impossible)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        busy = await cli("sandbox", "--port", str(port))
    assert busy.code == 2, busy.stderr
    assert str(port) in one_line(busy)


# --- 3. stop when the money stops ---------------------------------------------------------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_insufficient_balance_stops_new_orders_and_names_the_rows_not_sent(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(6)]
    sandbox.catfee.delivery.for_target(targets[1], Delivery.REFUSE)  # "insufficient balance"
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    run = await batch(urls, rows, "--concurrency", "1", "--json", "--journal", str(journal))
    assert run.code == 1, run.stderr
    no_traceback(run)
    results = outcomes(run)
    assert len(results) == 6  # one object per input row, rows not sent included
    assert results[0]["verdict"] == "DELIVERED"
    not_sent = [r for r in results if r["verdict"] is None]
    assert len(not_sent) == 5 and all("cannot pay" in r["not_sent"] for r in not_sent)
    assert "cannot pay" in run.stderr and "not sent: " in run.stderr
    assert sum(sandbox.catfee.charge_counts().values()) == 1  # nothing after the refusal
    # Topped up: the resume buys the refused row and the rest, each once.
    sandbox.catfee.delivery.for_target(targets[1], Delivery.NORMAL)
    again = await batch(urls, rows, "--journal", str(journal), "--resume", "--json")
    assert again.code == 0, again.stderr
    bought_once_each(sandbox, [r["client_order_id"] for r in results])


# --- 4. a summary a treasurer can act on -------------------------------------------------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_summary_names_every_row_not_delivered_and_what_was_paid_for_nothing(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(4)]
    sandbox.catfee.delivery.for_target(targets[2], Delivery.WRONG_RECEIVER)
    rows = rows_file(tmp_path, targets)
    report = tmp_path / "report.csv"
    run = await batch(urls, rows, "--deadline", "4", "--report", str(report))
    assert run.code == 1, run.stderr
    no_traceback(run)
    mismatch = [line for line in run.stderr.splitlines() if "PROVIDER_MISMATCH:" in line]
    assert len(mismatch) == 1
    assert "line 4" in mismatch[0] and targets[2] in mismatch[0]
    assert "paid for energy that did not arrive: 1.105 TRX" in run.stderr
    with report.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 4
    by_to = {row["to"]: row for row in written}
    assert by_to[targets[2]]["verdict"] == "PROVIDER_MISMATCH"
    assert by_to[targets[2]]["reason"]
    assert by_to[targets[0]]["verdict"] == "DELIVERED"


# --- 5. always alive: signals ----------------------------------------------------------------


@pytest.mark.slow
async def test_sigint_stops_sending_lets_orders_settle_and_prints_the_resume_command(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(8)]
    for target in targets:
        sandbox.catfee.delivery.for_target(target, Delivery.NEVER_LANDS)
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    command = [
        *("batch", "--provider", "catfee", str(rows), "--journal", str(journal)),
        *("--concurrency", "2", "--deadline", "60", "--grace", "0.5"),
        *urls_args(urls, "catfee"),
    ]
    code, text = await signalled(
        command, signal.SIGINT, when=lambda: sandbox.catfee.control.count("create") >= 2
    )
    assert code == 130, text
    assert "Traceback" not in text
    assert "unsettled client_order_ids:" in text and "--resume" in text
    assert sandbox.catfee.control.count("create") == 2  # nothing sent after the signal
    async with await Journal.open(journal, create=False) as book:
        counts = await book.counts()
    assert counts["SENT"] + counts["ORDERED"] == 2 and counts["INTENDED"] == 6


@pytest.mark.slow
async def test_sigterm_during_the_credentials_check_says_so_and_sends_nothing(
    served: Any, tmp_path: Path
) -> None:
    """Before any order is sent, SIGTERM ends the batch like Ctrl-C: one line, exit 130."""
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(3)])
    faults = sandbox.catfee.control.faults
    faults.inject(Fault.LATENCY, endpoint="account", delay=30.0)  # the check hangs
    command = [
        *("batch", "--provider", "catfee", str(rows), "--journal", str(tmp_path / "j.db")),
        *urls_args(urls, "catfee"),
    ]
    # Sent once the account request has arrived (its fault is drawn).
    code, text = await signalled(command, signal.SIGTERM, when=lambda: not faults.pending())
    lines = text.strip().splitlines()
    assert code == 130, lines
    assert lines == ["energy-async: interrupted by SIGTERM"]
    assert sandbox.catfee.control.count("create") == 0


# --- 6. input as people write it ---------------------------------------------------------------


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_excel_csv_with_bom_semicolons_and_capitals_is_read(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(2)]
    rows = tmp_path / "excel.csv"
    rows.write_bytes(
        b"\xef\xbb\xbfTo;Energy\r\n" + b"".join(f"{t};{ENERGY}\r\n".encode() for t in targets)
    )
    run = await batch(urls, rows, "--json")
    assert run.code == 0, run.stderr
    assert sorted(r["request"]["target"] for r in outcomes(run)) == sorted(targets)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("to,to,energy\n{t},{t},65000\n", "more than once in the header 'to,to,energy'"),
        ("to,energy,colour\n{t},65000,red\n", "unknown column(s) colour in the header"),
        ("to,energy\n", "no rows"),
        ("address,amount\n{t},65000\n", "found 'address,amount'"),
        ("to,energy\n" + "x" * 140_000 + ",65000\n", "field larger than field limit"),
    ],
)
async def test_a_file_that_cannot_be_a_batch_is_one_line_exit_2(
    served: Any, tmp_path: Path, text: str, says: str, inproc: Any
) -> None:
    sandbox, urls = served
    rows = tmp_path / "rows.csv"
    rows.write_text(text.replace("{t}", sandbox.new_target()))
    run = await inproc("batch", "--provider", "catfee", str(rows), *urls_args(urls, "catfee"))
    assert run.code == 2, run.stderr
    assert says in one_line(run)
    assert sandbox.catfee.control.count() == 0


async def test_a_deeply_nested_jsonl_row_is_a_bad_row(
    served: Any, tmp_path: Path, inproc: Any
) -> None:
    sandbox, urls = served
    rows = tmp_path / "rows.jsonl"
    rows.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    run = await inproc("batch", "--provider", "catfee", str(rows), *urls_args(urls, "catfee"))
    assert run.code == 2, run.stderr
    no_traceback(run)
    assert "line 1: not a JSON object" in run.stderr
    assert sandbox.catfee.control.count() == 0
