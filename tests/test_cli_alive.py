"""The CLI keeps the user informed while it works, and keeps its word when the provider stops
taking its key: a batch's progress redrawn every second (in flight, settled per verdict, rate,
ETA), the one notice that a batch without ``--journal`` cannot be resumed, ``-v``/``-vv``
logging, ``verify --client-order-id`` re-judging an order from the chain, and credentials
refused in the middle of a batch (new orders stop at once, the rows not sent are listed).

Runs are subprocesses against a sandbox served by this test process, except the logging ones,
which end in milliseconds in-process.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from energy_async.journal import Journal
from energy_async.providers import CatFee
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    Delivery,
    Fault,
    Sandbox,
)
from energy_async.session import ProviderSession
from tests.test_cli import ENV, SPEED, Run, cli, in_process_cli, no_traceback, urls_args
from tests.test_cli_batch import one_line, outcomes, rows_file

ENERGY = 65_000
README = Path(__file__).parent.parent / "README.md"

# One redraw of report.Progress.line(): done/total, in flight, settled per verdict, rate, ETA.
PROGRESS = re.compile(
    r"(?P<done>\d+)/(?P<total>\d+) in flight (?P<flight>\d+) delivered (?P<delivered>\d+)"
    r"(?P<others>.*?) (?P<rate>\d+\.\d)/s ETA (?P<eta>-|\d+ s)$"
)


# --- progress: a redraw at least every second while orders are out -----------------------------


@dataclass(frozen=True)
class Timed:
    at: float  # when the line reached this process (monotonic seconds)
    text: str


@dataclass(frozen=True)
class ProgressRun:
    code: int
    lines: list[Timed]
    charges: dict[str | None, int]

    def progress(self) -> list[tuple[Timed, re.Match[str]]]:
        found = [(line, PROGRESS.search(line.text)) for line in self.lines]
        return [(line, match) for line, match in found if match is not None]


async def _batch_with_held_orders(tmp_path: Path) -> ProgressRun:
    """Four rows at once, no journal; the provider holds two of the creates for 3 s, so two
    orders settle at once and two stay out for seconds."""
    sandbox = Sandbox(seed=61, speed=SPEED)
    async with sandbox.serve() as urls:
        rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(4)])
        sandbox.catfee.control.faults.inject(Fault.LATENCY, times=2, endpoint="create", delay=3.0)
        command = [
            *(sys.executable, "-m", "energy_async", "batch", "--provider", "catfee", str(rows)),
            *("--concurrency", "4", "--deadline", "30", *urls_args(urls, "catfee")),
        ]
        lines: list[Timed] = []
        async with await anyio.open_process(command, env=ENV) as process:
            assert process.stderr is not None
            pending = b""
            with anyio.fail_after(30):
                async for chunk in process.stderr:
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    now = time.monotonic()
                    lines += [Timed(now, line.decode()) for line in complete]
                code = await process.wait()
        return ProgressRun(code, lines, sandbox.catfee.charge_counts())


@pytest.fixture(scope="module")
def held_batch(tmp_path_factory: pytest.TempPathFactory) -> ProgressRun:
    """One run shared by the progress tests (about 4 s)."""
    path = tmp_path_factory.mktemp("progress")
    return anyio.run(_batch_with_held_orders, path, backend="asyncio")


@pytest.mark.slow  # a batch whose orders are held 3 s at the provider: about 4 s
def test_progress_is_redrawn_every_second_while_orders_are_out(held_batch: ProgressRun) -> None:
    run = held_batch
    text = "\n".join(line.text for line in run.lines)
    assert run.code == 0, text
    assert "Traceback" not in text
    assert sorted(run.charges.values()) == [1, 1, 1, 1]  # each row bought once
    drawn = run.progress()
    out = [(line, m) for line, m in drawn if int(m["done"]) < int(m["total"])]
    assert len(out) >= 3, text  # 3 s of held orders
    # At least one redraw a second from the first one to the end (1.5 s: scheduling slack).
    gaps = [later.at - earlier.at for (earlier, _), (later, _) in itertools.pairwise(drawn)]
    assert max(gaps) <= 1.5, (gaps, text)
    # While orders are out the line says how many, what settled so far, a rate and an ETA.
    assert all(int(m["flight"]) > 0 for _, m in out), text
    mixed = [m for _, m in out if int(m["delivered"]) > 0]
    assert mixed, text
    assert any(float(m["rate"]) > 0 and m["eta"] != "-" for m in mixed), text
    # Without --journal the batch says once, at the start, that it cannot be resumed.
    notices = [i for i, line in enumerate(run.lines) if "cannot be resumed" in line.text]
    assert len(notices) == 1, text
    first_drawn = run.lines.index(drawn[0][0])
    assert notices[0] < first_drawn
    assert drawn[0][0].at - run.lines[notices[0]].at <= 1.5  # the first redraw within a second


@pytest.mark.slow  # shares the run above
def test_the_last_progress_line_counts_no_order_in_flight(held_batch: ProgressRun) -> None:
    """Once every order settled nothing is in flight (it used to repeat the last tick's 2)."""
    last = held_batch.progress()[-1][1]
    assert last["done"] == last["total"] == "4"
    assert last["flight"] == "0", last.string


# --- -v / -vv -----------------------------------------------------------------------------------

INFO = " INFO energy_async.session: catfee account: timestamp refused; retrying on the server's"
DEBUG = " DEBUG energy_async.session: GET /catfee/v1/account -> 200"


@pytest.fixture
def inproc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    return in_process_cli(capsys, monkeypatch)


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """Each in-process run configures logging afresh; nothing it adds outlives the test."""
    root = logging.getLogger("energy_async")
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def served() -> Any:
    sandbox = Sandbox(seed=62, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@pytest.mark.anyio
async def test_v_logs_info_to_stderr_vv_debug_and_none_without(
    served: Any, inproc: Any, isolated_logging: None
) -> None:
    sandbox, urls = served
    # The provider's clock runs a minute ahead: the first signed request is refused (401, with
    # the server's Date) and retried at once on its clock; that retry is logged at INFO.
    sandbox.catfee.clock_offset = 60.0
    root = logging.getLogger("energy_async")
    handlers, level = list(root.handlers), root.level
    seen = {}
    for flags in ((), ("-v",), ("-vv",)):
        run = await inproc("account", "--provider", "catfee", *flags, "--provider-url", urls.catfee)
        root.handlers[:] = handlers  # the next run starts as a fresh process would
        root.setLevel(level)
        assert run.code == 0, run.stderr
        assert "catfee: balance" in run.stderr
        seen[flags] = (INFO in run.stderr, DEBUG in run.stderr)
    assert seen == {(): (False, False), ("-v",): (True, False), ("-vv",): (True, True)}
    assert sandbox.catfee.control.count("account") == 6  # each run: the refusal and the retry


@pytest.mark.anyio
async def test_v_before_the_command_is_refused_in_one_line_as_the_docs_never_put_it_there(
    served: Any, inproc: Any, isolated_logging: None
) -> None:
    """``-v`` belongs to each command (``energy-async verify -v``); README and ``--help`` show
    it there only. Placed before the command it is a one-line usage error, nothing sent."""
    sandbox, urls = served
    readme = README.read_text()
    assert "every command: -v" in readme
    assert not re.search(r"energy-async -v", readme)  # else the placement must work
    top_help = await inproc("--help")
    assert top_help.code == 0 and "--verbose" not in top_help.stdout
    run = await inproc(
        "-v", "verify", "--to", sandbox.new_target(), "--trongrid-url", urls.trongrid
    )
    assert run.code == 2
    assert "unrecognized arguments: -v" in one_line(run)
    assert run.stdout == ""
    assert sandbox.trongrid.count() == 0
    after = await inproc(
        "verify", "-v", "--to", sandbox.new_target(), "--trongrid-url", urls.trongrid
    )
    assert after.code == 0, after.stderr
    assert sandbox.trongrid.count() > 0


# --- verify --client-order-id: an order from the journal, judged again from the chain -----------


@pytest.mark.slow  # four CLI runs, one judged to its deadline: about 5 s
@pytest.mark.anyio
async def test_verify_by_client_order_id_rejudges_the_journalled_order_and_buys_nothing(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    honest, cheated, never_sent = (sandbox.new_target() for _ in range(3))
    sandbox.catfee.delivery.for_target(cheated, Delivery.CLAIM_WITHOUT_DELEGATING)
    journal_path = tmp_path / "batch.journal"
    # The journal a batch leaves: two orders placed (one by a provider that lies), one row not
    # sent yet.
    catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee)
    async with (
        ProviderSession(catfee) as session,
        await Journal.open(journal_path) as journal,
    ):
        requests = {
            name: session.prepare(target=target, energy=ENERGY, client_order_id=f"row-{name}")
            for name, target in (("honest", honest), ("cheated", cheated), ("later", never_sent))
        }
        await journal.record_intents("catfee", list(requests.values()))
        for name in ("honest", "cheated"):
            await journal.mark_sent(f"row-{name}")
            await journal.record_order(f"row-{name}", await session.place(requests[name]))
    sandbox.advance_blocks(3)  # both delegations (the honest one) are in blocks
    creates = sandbox.catfee.control.count("create")
    runs: dict[str, Run] = {}

    async def verify(cid: str) -> None:
        runs[cid] = await cli(
            *("verify", "--provider", "catfee", "--client-order-id", cid),
            *("--journal", str(journal_path), "--deadline", "1.5", "--json"),
            *urls_args(urls, "catfee"),
        )

    # One after the other: a lookup holds the journal as a batch does (see the test below).
    for cid in ("row-honest", "row-cheated", "row-later", "row-nobody"):
        await verify(cid)

    judged = {}
    for cid in ("row-honest", "row-cheated"):
        run = runs[cid]
        no_traceback(run)
        payload = run.json()
        assert payload["client_order_id"] == cid
        assert "judging catfee order" in run.stderr and "buying nothing" in run.stderr
        assert payload["verdict"] in run.stderr  # the human report, as `buy` prints it
        judged[cid] = (payload["verdict"], run.code)
        evidence = payload["evidence"]
        assert evidence["expected_energy"] == ENERGY
        assert evidence["delegation"]["txid"] == payload["order"]["delegate_hash"]
    assert judged == {"row-honest": ("DELIVERED", 0), "row-cheated": ("PROVIDER_MISMATCH", 1)}
    assert runs["row-honest"].json()["evidence"]["attributed_energy"] == ENERGY
    assert runs["row-cheated"].json()["evidence"]["delegation"]["found"] is False
    # An id with no provider order yet, and one the journal never held: one line, exit 2.
    for cid, says in (("row-later", "--resume"), ("row-nobody", "is not in")):
        run = runs[cid]
        assert run.code == 2, run.stderr
        assert cid in one_line(run) and says in run.stderr
        assert run.stdout == ""
    assert sandbox.catfee.control.count("create") == creates  # nothing bought
    assert sandbox.catfee.charge_counts() == {"row-honest": 1, "row-cheated": 1}


@pytest.mark.slow  # the refusal waits out the journal's busy timeout: about 1 s
@pytest.mark.anyio
async def test_order_by_client_order_id_while_a_batch_holds_the_journal_says_what_to_do(
    served: Any, tmp_path: Path, inproc: Any
) -> None:
    """A running batch holds its SQLite journal alone (exclusive locking: a second batch on it
    could buy twice), so a lookup by client_order_id cannot read it meanwhile; it says so in
    one line and names the lookup that works, by the provider's id."""
    sandbox, urls = served
    path = tmp_path / "batch.journal"
    catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee)
    async with ProviderSession(catfee) as session, await Journal.open(path) as running:
        request = session.prepare(target=sandbox.new_target(), energy=ENERGY, client_order_id="r1")
        await running.record_intents("catfee", [request])
        await running.mark_sent("r1")
        placed = await session.place(request)
        await running.record_order("r1", placed)
        # The batch is still at work (the journal open) when the user looks the order up.
        run = await inproc(
            *("order", "--provider", "catfee", "--client-order-id", "r1"),
            *("--journal", str(path), "--json", "--provider-url", urls.catfee),
        )
        by_id = await inproc(
            *("order", "--provider", "catfee", placed.id, "--json"),
            *("--provider-url", urls.catfee),
        )
    assert run.code == 2 and run.stdout == "" and len(run.stderr.strip().splitlines()) == 1
    assert "a batch still running holds it alone" in run.stderr
    assert "`order ORDER_ID`" in run.stderr
    assert by_id.code == 0 and json.loads(by_id.stdout)["id"] == placed.id


# --- credentials refused in the middle of a batch ----------------------------------------------


async def _refuse_credentials_at_create(sandbox: Sandbox, creates_before: int) -> None:
    """Hold create number ``creates_before + 1`` at the provider's door and, while it waits,
    rotate the account's secret: that create (and every request after it) gets a 401."""
    control = sandbox.catfee.control
    # The sandbox offers no event for "a request arrived": its books are polled.
    while control.count("create") < creates_before:  # noqa: ASYNC110
        await anyio.sleep(0.002)
    control.faults.inject(Fault.LATENCY, endpoint="create", delay=0.5)
    while control.faults.pending():  # noqa: ASYNC110
        await anyio.sleep(0.002)
    sandbox.catfee.api_secret = "rotated-by-the-provider"


@pytest.mark.slow  # two CLI runs of six rows one at a time: about 5 s
@pytest.mark.anyio
async def test_credentials_refused_mid_batch_stop_new_orders_and_name_the_rows_not_sent(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(6)]
    rows = rows_file(tmp_path, targets)
    journal = tmp_path / "batch.journal"
    async with anyio.create_task_group() as group:
        group.start_soon(_refuse_credentials_at_create, sandbox, 2)
        run = await cli(
            *("batch", "--provider", "catfee", str(rows), "--concurrency", "1", "--json"),
            *("--journal", str(journal), *urls_args(urls, "catfee")),
        )
    no_traceback(run)
    assert run.code != 0, run.stderr
    results = outcomes(run)
    assert len(results) == 6  # one object per input row
    by_target = {r["request"]["target"]: r for r in results}
    assert [by_target[t]["verdict"] for t in targets[:2]] == ["DELIVERED", "DELIVERED"]
    refused = by_target[targets[2]]
    assert refused["verdict"] is None
    assert "credentials refused" in (refused.get("not_sent") or refused.get("unsettled") or "")
    for target in targets[3:]:
        row = by_target[target]
        assert row["verdict"] is None and "credentials refused" in row["not_sent"], row
    assert "stopped sending new orders: credentials refused" in run.stderr
    assert "cannot be resumed" not in run.stderr  # it has a journal
    # The books: the third create was refused at the door, and nothing was sent after it.
    requests = sandbox.catfee.control.requests
    creates = [i for i, r in enumerate(requests) if r.endpoint == "create"]
    assert len(creates) == 3 and requests[creates[2]].status == 401
    assert sandbox.catfee.charge_counts() == {
        by_target[t]["client_order_id"]: 1 for t in targets[:2]
    }
    # The key fixed, the resume buys every other row, each exactly once.
    sandbox.catfee.api_secret = CATFEE_API_SECRET
    again = await cli(
        *("batch", "--provider", "catfee", str(rows), "--journal", str(journal), "--resume"),
        *urls_args(urls, "catfee"),
    )
    assert again.code == 0, again.stderr
    charges = sandbox.catfee.charge_counts()
    assert charges == {r["client_order_id"]: 1 for r in results}


@pytest.mark.slow  # a CLI run of about 1.5 s
@pytest.mark.anyio
async def test_credentials_refused_at_a_create_are_exit_2_and_that_row_not_sent(
    served: Any, tmp_path: Path
) -> None:
    sandbox, urls = served
    rows = rows_file(tmp_path, [sandbox.new_target() for _ in range(3)])
    async with anyio.create_task_group() as group:
        group.start_soon(_refuse_credentials_at_create, sandbox, 0)
        run = await cli(
            *("batch", "--provider", "catfee", str(rows), "--concurrency", "1", "--json"),
            *("--journal", str(tmp_path / "batch.journal"), *urls_args(urls, "catfee")),
        )
    no_traceback(run)
    assert sandbox.catfee.total_charged_sun == 0
    not_sent = [r.get("not_sent", "")[:19] for r in outcomes(run)]
    assert (run.code, not_sent) == (2, ["credentials refused"] * 3), run.stderr
