"""The CLI batch killed with SIGKILL five times and resumed: every order charged exactly once.

The sandbox is served by this test's event loop while ``python -m energy_async batch`` runs
as a child process against it, so the provider's books and the chain outlive every kill and
judge the outcome: nothing bought twice, nothing left unsettled, nothing falsely DELIVERED.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import anyio
import msgspec
import pytest

from energy_async import DeliveryResult, Verdict
from energy_async.journal import EntryState, Journal
from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox
from tests.coordination import stage
from tests.reliability.truth import audit, stage_faults

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(600)]

ROWS = 800
ENERGY = 65_000
KILLS = 5
SPEED = 40.0  # a block every 75 ms; a 1h order lasts 90 s, longer than the whole test
CONCURRENCY = 128
# Per order: what a never-landing broadcast waits for. The CLI polls on the default schedule
# (chain looks at about 1, 2.5, 4.8 and 8.1 s), so a delivered order needs a few seconds.
DEADLINE = 10.0
FAULT_RATE = 0.03
# The pre-order snapshot (getaccountresource) is spared: an order whose target cannot be read
# is never sent, and here every row must end up bought exactly once.
TRONGRID_ENDPOINTS = (
    "gettransactionbyid",
    "gettransactioninfobyid",
    "solidity.gettransactioninfobyid",
    "getdelegatedresourcev2",
)
# A run is killed after it has printed a seeded random number of new results: a point in the
# batch, not in time, so every kill lands mid-batch however fast the code gets.
KILL_AFTER_RESULTS = (40, 110)


async def wait_for_results(out: Path, count: int) -> None:
    """Until the run's output holds ``count`` result lines (the CLI prints one per order)."""
    # A file has no event to wait on; its content is polled.
    while (await anyio.Path(out).read_bytes()).count(b'{"verdict"') < count:  # noqa: ASYNC110
        await anyio.sleep(0.01)


async def journal_counts(path: Path) -> dict[str, int]:
    async with await Journal.open(path, create=False) as journal:
        return await journal.counts()


async def wait_for_requests(sandbox: Sandbox, before: int) -> None:
    """Until the child reaches the provider: it is past start-up and has bought or replayed."""
    with anyio.fail_after(30):
        while sandbox.catfee.control.count() == before:  # noqa: ASYNC110  (no event to wait on)
            await anyio.sleep(0.01)


async def test_batch_killed_five_times_and_resumed_buys_every_row_exactly_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = Sandbox(seed=7, speed=SPEED)
    faults = stage_faults(
        sandbox,
        FAULT_RATE,
        delay=0.05,
        retry_after=0.05,
        seed=7,
        trongrid_endpoints=TRONGRID_ENDPOINTS,
    )
    targets = [sandbox.new_target() for _ in range(ROWS)]
    rows = tmp_path / "orders.csv"
    rows.write_text("to,energy\n" + "".join(f"{target},{ENERGY}\n" for target in targets))
    journal = tmp_path / "batch.journal"
    env = {**os.environ, "CATFEE_API_KEY": CATFEE_API_KEY, "CATFEE_API_SECRET": CATFEE_API_SECRET}
    rng = random.Random(2024)
    kills: list[tuple[bool, int, int, int]] = []  # running?, settled, in flight, charged
    started = time.monotonic()

    async with sandbox.serve() as urls:
        command = [
            sys.executable,
            "-m",
            "energy_async",
            "batch",
            "--provider",
            "catfee",
            str(rows),
            "--journal",
            str(journal),
            "--concurrency",
            str(CONCURRENCY),
            "--deadline",
            str(DEADLINE),
            "--provider-url",
            urls.catfee,
            "--trongrid-url",
            urls.trongrid,
            "--json",
        ]
        for run in range(KILLS):
            resume = ["--resume"] if run else []
            out_path = tmp_path / f"run{run}.out"
            with out_path.open("wb") as out:
                async with await anyio.open_process(
                    [*command, *resume], stdout=out, stderr=out, env=env
                ) as process:
                    await wait_for_requests(sandbox, sandbox.catfee.control.count())
                    await wait_for_results(out_path, rng.randint(*KILL_AFTER_RESULTS))
                    running = process.returncode is None
                    process.send_signal(signal.SIGKILL)
                    assert await process.wait() == -signal.SIGKILL or not running
            counts = await journal_counts(journal)
            in_flight = counts[EntryState.SENT] + counts[EntryState.ORDERED]
            charged = len(sandbox.catfee.charge_counts())
            kills.append((running, counts[EntryState.SETTLED], in_flight, charged))

        final_out = tmp_path / "final.out"
        with final_out.open("wb") as out, (tmp_path / "final.err").open("wb") as err:
            final = await anyio.run_process(
                [*command, "--resume"], stdout=out, stderr=err, env=env, check=False
            )
        elapsed = time.monotonic() - started

        async with await Journal.open(journal, create=False) as book:
            counts = await book.counts()
            entries = [entry async for entry in book.iter_entries()]

    # Every kill interrupted a live batch with orders in flight, and each run made progress.
    assert all(running for running, *_ in kills), kills
    assert all(in_flight > 0 for _, _, in_flight, _ in kills), kills
    settled_at_kills = [settled for _, settled, _, _ in kills]
    assert settled_at_kills == sorted(set(settled_at_kills)), kills  # strictly increasing
    assert 0 < settled_at_kills[-1] < ROWS, kills  # the last kill still left work to resume

    # The last resume finished the batch: every row settled, none left in flight.
    assert final.returncode in (0, 1), (tmp_path / "final.err").read_text()[-2000:]
    assert counts[EntryState.SETTLED] == len(entries) == ROWS
    assert {entry.request.target for entry in entries} == set(targets)
    results = [
        msgspec.json.decode(line, type=DeliveryResult)
        for line in final_out.read_bytes().splitlines()
    ]
    assert len(results) == ROWS - settled_at_kills[-1]
    by_id = {entry.client_order_id: entry for entry in entries}
    assert all(by_id[result.client_order_id].verdict is result.verdict for result in results)

    # The sandbox's books: every row bought exactly once, and verdicts that match them.
    charges = sandbox.catfee.charge_counts()
    assert len(charges) == ROWS
    assert set(charges) == set(by_id)
    assert set(charges.values()) == {1}
    requests = {cid: entry.request for cid, entry in by_id.items()}
    verdicts = {cid: entry.verdict or Verdict.UNKNOWN for cid, entry in by_id.items()}
    named = {
        cid: entry.result.evidence.delegation.txid
        if entry.result is not None and entry.result.evidence.delegation is not None
        else None
        for cid, entry in by_id.items()
    }
    books = audit(sandbox, sandbox.catfee, requests, verdicts, named)
    assert books.unsettled == []
    assert books.false_delivered == []
    assert books.wrong_verdicts == []
    assert books.verdicts[Verdict.NOT_DELIVERED] == books.never_lands > 0
    assert books.verdicts[Verdict.DELIVERED] == ROWS - books.never_lands

    dealt = faults.dealt()
    assert {name: dealt[name] for name in faults.staged if dealt[name] == 0} == {}
    with capsys.disabled():
        print(
            f"\nreliability: CLI batch of {ROWS} rows killed {KILLS} times "
            f"(settled at each kill {settled_at_kills}, in flight "
            f"{[in_flight for _, _, in_flight, _ in kills]}), resumed to the end in "
            f"{elapsed:.1f} s; {books.summary()}, faults dealt {sum(dealt.values())}"
        )


@pytest.mark.timeout(60)
async def test_resume_after_the_rental_ended_still_finds_the_order_delivered(
    tmp_path: Path,
) -> None:
    # A crash resumed more than an hour later (here: 1,300 blocks of a frozen chain clock).
    path = tmp_path / "batch.journal"
    async with stage() as st:
        request = st.catfee.session.prepare(target=st.sandbox.new_target(), energy=ENERGY)
        async with await Journal.open(path) as journal:
            await journal.record_intents("catfee", [request])
            await journal.mark_sent(request.client_order_id)
            order = await st.catfee.session.place(request)
            await journal.record_order(request.client_order_id, order)
        st.sandbox.advance_blocks(1_300)
        async with (
            await Journal.open(path, create=False) as journal,
            st.catfee.resume(journal, concurrency=1, deadline=2.0) as batch,
        ):
            results = [result async for result in batch]
    sim_order = st.sandbox.catfee.orders[order.id]
    assert sim_order.reclaim_hash is not None  # delivered, then reclaimed at expiry
    assert st.sandbox.chain.tx_state(sim_order.delegate_hash or "") == "solid"
    assert st.sandbox.catfee.charges(request.client_order_id) == 1
    assert [result.verdict for result in results] == [Verdict.DELIVERED]
