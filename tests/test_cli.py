"""The ``energy-async`` command as users and scripts run it: a subprocess, JSON on stdout,
exit codes, one-line errors, nothing sent on bad input.

Every verdict cell and attribution case runs against its own sandbox (served by this test
process) and all of them run at once, so the whole table costs about one deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from energy_async import Verdict
from energy_async.cli import main as cli_main
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Delivery,
    Fault,
    Sandbox,
    SandboxURLs,
)

pytestmark = pytest.mark.anyio

SPEED = 30.0  # a block every 0.1 s
ENV = {
    **{k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_API_SECRET"))},
    "CATFEE_API_KEY": CATFEE_API_KEY,
    "CATFEE_API_SECRET": CATFEE_API_SECRET,
    "MEFREE_API_KEY": MEFREE_API_KEY,
    "MEFREE_API_SECRET": MEFREE_API_SECRET,
}
EXIT = {Verdict.DELIVERED: 0, Verdict.UNKNOWN: 3}  # every other verdict: 1


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, f"expected one JSON object on stdout, got: {self.stdout!r}"
        return json.loads(lines[0])


async def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    done = await anyio.run_process(
        [sys.executable, "-m", "energy_async", *args], env=env or ENV, check=False
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def urls_args(urls: SandboxURLs, provider: str) -> list[str]:
    url = urls.catfee if provider == "catfee" else urls.mefree
    return ["--provider-url", url, "--trongrid-url", urls.trongrid]


@pytest.fixture
def inproc(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    return in_process_cli(capsys, monkeypatch)


def in_process_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI in this process (in a worker thread, its own event loop): for the many runs that
    end before anything is sent, milliseconds instead of an interpreter start each."""
    for name, value in ENV.items():
        if name.endswith(("_API_KEY", "_API_SECRET")):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRONGRID_API_KEY", raising=False)

    async def run(*argv: str) -> Run:
        def call() -> int:
            try:
                return cli_main(list(argv))
            except SystemExit as exit_:  # argparse
                return int(exit_.code or 0)

        code = await anyio.to_thread.run_sync(call)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr


# --- scenarios ----------------------------------------------------------------------------------

Hook = Callable[[Sandbox, str], None]


@dataclass
class Scenario:
    name: str
    expect: Verdict
    provider: str = "catfee"
    delivery: Delivery | None = None
    setup: Hook | None = None  # before the order
    after_create: Hook | None = None  # right after the provider took the create
    deadline: float = 4.0
    extra_buys: int = 0  # more orders to the same target at the same time
    charged: int = 1
    results: list[Run] = field(default_factory=list)


def double_weight(sandbox: Sandbox, target: str) -> None:
    sandbox.chain.set_total_energy_weight(sandbox.chain.total_energy_weight * 2)


def weight_up_0_3_percent(sandbox: Sandbox, target: str) -> None:
    sandbox.chain.set_total_energy_weight(sandbox.chain.total_energy_weight * 1003 // 1000)


def lose_provider_answers(sandbox: Sandbox, target: str) -> None:
    sandbox.catfee.control.faults.inject(Fault.LOST_RESPONSE, times=10_000)


def chain_goes_dark(sandbox: Sandbox, target: str) -> None:
    sandbox.trongrid.unreachable = True


def older_delegation(sandbox: Sandbox, target: str) -> None:
    other = sandbox.chain.new_account(energy_stake_sun=100_000 * 10**6)
    sandbox.chain.delegate(other, target, 20_000 * 10**6)
    sandbox.advance_blocks(2)
    setattr(sandbox, "_older", other)  # noqa: B010 (test-only note for the reclaim hook)


def reclaim_older(sandbox: Sandbox, target: str) -> None:
    sandbox.chain.undelegate(sandbox._older, target, 20_000 * 10**6)  # type: ignore[attr-defined]


SCENARIOS = [
    # provider says DELEGATION_CONFIRMED (the CLI first looks after 1 s: confirmed by then)
    Scenario("confirmed/full", Verdict.DELIVERED),
    Scenario("confirmed/part", Verdict.UNDER_DELIVERED, delivery=Delivery.PARTIAL),
    Scenario(
        "confirmed/none", Verdict.PROVIDER_MISMATCH, "mefree", Delivery.CLAIM_WITHOUT_DELEGATING
    ),
    Scenario("wrong receiver", Verdict.PROVIDER_MISMATCH, delivery=Delivery.WRONG_RECEIVER),
    # provider still pending
    Scenario("pending/full", Verdict.DELIVERED, delivery=Delivery.PROVIDER_LAG),
    Scenario(
        "pending/part",
        Verdict.UNDER_DELIVERED,
        delivery=Delivery.PROVIDER_LAG,
        after_create=double_weight,
    ),
    Scenario("pending/none", Verdict.NOT_DELIVERED, delivery=Delivery.NEVER_LANDS, deadline=2.5),
    # provider refused or failed
    Scenario("failed/full", Verdict.DELIVERED, delivery=Delivery.FAIL_BUT_DELEGATED),
    Scenario(
        "failed/part",
        Verdict.UNDER_DELIVERED,
        delivery=Delivery.FAIL_BUT_DELEGATED,
        after_create=double_weight,
    ),
    Scenario("refused", Verdict.REJECTED, delivery=Delivery.REFUSE, charged=0),
    # provider unreachable
    Scenario("unreachable/full", Verdict.DELIVERED, setup=lose_provider_answers),
    Scenario(
        "unreachable/part",
        Verdict.UNDER_DELIVERED,
        delivery=Delivery.PARTIAL,
        setup=lose_provider_answers,
        deadline=2.5,
    ),
    Scenario(
        "unreachable/none",
        Verdict.UNKNOWN,
        setup=lose_provider_answers,
        after_create=chain_goes_dark,
        deadline=2.5,
    ),
    # attribution when the EnergyLimit delta lies
    Scenario("two in flight", Verdict.DELIVERED, extra_buys=1, charged=1),
    Scenario(
        "older delegation reclaimed",
        Verdict.DELIVERED,
        setup=older_delegation,
        after_create=reclaim_older,
    ),
    Scenario(
        "weight drift within tolerance", Verdict.DELIVERED, after_create=weight_up_0_3_percent
    ),
]


async def play(scenario: Scenario, seed: int) -> None:
    sandbox = Sandbox(seed=seed, speed=SPEED)
    async with sandbox.serve() as urls:
        sim = sandbox.catfee if scenario.provider == "catfee" else sandbox.mefree
        target = sandbox.new_target()
        if scenario.delivery is not None:
            sim.delivery.for_target(target, scenario.delivery)
        if scenario.setup is not None:
            scenario.setup(sandbox, target)

        async def watch() -> None:
            # The sandbox offers no event for "a request arrived"; its counter is polled.
            while sim.control.count("create") == 0:  # noqa: ASYNC110
                await anyio.sleep(0.002)
            if scenario.after_create is not None:
                scenario.after_create(sandbox, target)

        async def buy() -> None:
            run = await cli(
                "buy",
                "--provider",
                scenario.provider,
                "--to",
                target,
                "--energy",
                "65000",
                "--deadline",
                str(scenario.deadline),
                "--json",
                *urls_args(urls, scenario.provider),
            )
            scenario.results.append(run)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            async with anyio.create_task_group() as buyers:
                for _ in range(1 + scenario.extra_buys):
                    buyers.start_soon(buy)
            group.cancel_scope.cancel()
        for run in scenario.results:
            order = run.json()
            assert sim.charges(order["client_order_id"]) == scenario.charged, scenario.name


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_every_verdict_cell_and_attribution_case_through_the_cli() -> None:
    async with anyio.create_task_group() as group:
        for seed, scenario in enumerate(SCENARIOS):
            group.start_soon(play, scenario, seed)
    problems = []
    for scenario in SCENARIOS:
        for run in scenario.results:
            no_traceback(run)
            payload = run.json()
            expected_code = EXIT.get(scenario.expect, 1)
            if payload["verdict"] != scenario.expect or run.code != expected_code:
                problems.append(
                    f"{scenario.name}: verdict {payload['verdict']} exit {run.code}, expected "
                    f"{scenario.expect} exit {expected_code}\n{run.stderr}"
                )
                continue
            for key in ("id", "client_order_id", "status", "confirm_status", "delegate_hash"):
                assert payload["order"] is None or key in payload["order"], (scenario.name, key)
            for key in ("energy_before", "energy_after", "expected_energy", "tolerance"):
                assert key in payload["evidence"], (scenario.name, key)
            assert payload["evidence"]["expected_energy"] == 65_000
            assert scenario.expect in run.stderr  # the human report went to stderr
    assert not problems, "\n\n".join(problems)
    two = next(s for s in SCENARIOS if s.name == "two in flight")
    hashes = {run.json()["evidence"]["delegation"]["txid"] for run in two.results}
    assert len(hashes) == 2  # each order attributed through its own delegation


# --- bad input and configuration: exit 2, nothing sent -------------------------------------------


@pytest.fixture
async def served() -> Any:
    sandbox = Sandbox(seed=99, speed=SPEED)
    async with sandbox.serve() as urls:
        yield sandbox, urls


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--to", "TNotAnAddress", "--energy", "65000"], "address"),
        (["--to", "0x" + "ab" * 20, "--energy", "65000"], "address"),
        (["--to", "{target}", "--energy", "1000"], "65,000"),
        (["--to", "{target}", "--energy", "999999999999"], "energy"),
        (["--to", "{target}", "--energy", "65000", "--duration", "3d"], "1h"),
        (["--to", "{target}", "--transfers", "2"], "energy"),
        (
            ["--to", "{target}", "--energy", "65000", "--client-order-id", "bad id!"],
            "client_order_id",
        ),
        (
            ["--to", "{target}", "--energy", "65000", "--client-order-id", "x" * 65],
            "client_order_id",
        ),
        (["--to", "{target}", "--energy", "65000", "--deadline", "0"], "deadline"),
        (["--to", "{target}", "--energy", "65000", "--transfers", "1"], "not allowed with"),
        (["--to", "{target}"], "required"),
    ],
)
async def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    served: Any, args: list[str], says: str, inproc: Any
) -> None:
    sandbox, urls = served
    target = sandbox.new_target()
    args = [a.replace("{target}", target) for a in args]
    run = await inproc("buy", "--provider", "catfee", *args, *urls_args(urls, "catfee"))
    assert run.code == 2, run.stderr
    assert run.stdout == ""
    no_traceback(run)
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert says.lower() in run.stderr.lower()
    assert sandbox.catfee.control.count() == 0
    assert sandbox.trongrid.count() == 0


async def test_missing_credentials_name_the_variables_and_send_nothing(served: Any) -> None:
    sandbox, urls = served
    env = {k: v for k, v in ENV.items() if not k.startswith("CATFEE_")}
    run = await cli(
        "buy",
        "--provider",
        "catfee",
        "--to",
        sandbox.new_target(),
        "--energy",
        "65000",
        *urls_args(urls, "catfee"),
        env=env,
    )
    assert run.code == 2
    assert "CATFEE_API_KEY" in run.stderr and "CATFEE_API_SECRET" in run.stderr
    assert sandbox.catfee.control.count() == 0


async def test_wrong_credentials_are_a_configuration_error_with_nothing_bought(
    served: Any,
) -> None:
    sandbox, urls = served
    env = {**ENV, "CATFEE_API_SECRET": "not-the-secret"}
    run = await cli(
        "buy",
        "--provider",
        "catfee",
        "--to",
        sandbox.new_target(),
        "--energy",
        "65000",
        *urls_args(urls, "catfee"),
        env=env,
    )
    assert run.code == 2, run.stderr
    no_traceback(run)
    assert "not-the-secret" not in run.stderr
    assert sandbox.catfee.total_charged_sun == 0


async def test_plain_http_to_a_remote_host_is_refused(served: Any) -> None:
    sandbox, _ = served
    run = await cli(
        "buy",
        "--provider",
        "catfee",
        "--to",
        sandbox.new_target(),
        "--energy",
        "65000",
        "--provider-url",
        "http://api.catfee.io",
    )
    assert run.code == 2
    assert "https" in run.stderr


# --- the other commands ---------------------------------------------------------------------------


async def test_verify_prints_the_snapshot(served: Any) -> None:
    sandbox, urls = served
    target = sandbox.new_target()
    pool = sandbox.chain.new_account(energy_stake_sun=10**15)
    sandbox.chain.delegate(pool, target, 6_851 * 10**6)
    sandbox.advance_blocks(2)
    run = await cli("verify", "--to", target, "--trongrid-url", urls.trongrid, "--json")
    assert run.code == 0, run.stderr
    snap = run.json()
    assert snap["address"] == target and snap["exists"] is True
    assert snap["energy_limit"] == sandbox.chain.energy_limit(target) > 0
    assert snap["total_energy_limit"] == sandbox.chain.total_energy_limit
    assert snap["total_energy_weight"] == sandbox.chain.total_energy_weight
    assert snap["energy_used"] == 0


async def test_verify_of_an_unactivated_address_says_so(served: Any) -> None:
    sandbox, urls = served
    run = await cli("verify", "--to", sandbox.chain.new_address(), "--trongrid-url", urls.trongrid)
    assert run.code == 0
    assert "not activated" in run.stderr


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_order_and_no_verify(served: Any) -> None:
    sandbox, urls = served
    target = sandbox.new_target()
    placed = await cli(
        "buy",
        "--provider",
        "mefree",
        "--to",
        target,
        "--transfers",
        "2",
        "--no-verify",
        "--client-order-id",
        "my-order-1",
        "--json",
        *urls_args(urls, "mefree"),
    )
    assert placed.code == 0, placed.stderr
    order = placed.json()["order"]
    assert order["client_order_id"] == "my-order-1" and order["transfers"] == 2
    assert sandbox.trongrid.count() == 0  # --no-verify: the chain was not read
    shown = await cli(
        "order", "--provider", "mefree", order["id"], "--json", "--provider-url", urls.mefree
    )
    assert shown.code == 0
    assert shown.json()["id"] == order["id"]
    # The same client_order_id again returns the same order and buys nothing more.
    again = await cli(
        "buy",
        "--provider",
        "mefree",
        "--to",
        target,
        "--transfers",
        "2",
        "--no-verify",
        "--client-order-id",
        "my-order-1",
        "--json",
        *urls_args(urls, "mefree"),
    )
    assert again.json()["order"]["id"] == order["id"]
    assert sandbox.mefree.charges("my-order-1") == 1


async def test_unknown_order_is_one_line(served: Any) -> None:
    _, urls = served
    run = await cli("order", "--provider", "catfee", "nope", "--provider-url", urls.catfee)
    assert run.code == 1
    no_traceback(run)
    assert len(run.stderr.strip().splitlines()) == 1


# --- batch ---------------------------------------------------------------------------------------


async def test_batch_reports_every_bad_row_and_sends_nothing(served: Any, tmp_path: Path) -> None:
    sandbox, urls = served
    good = sandbox.new_target()
    rows = tmp_path / "rows.csv"
    rows.write_text(
        f"to,energy,duration\n{good},65000,1h\nTBad,65000,1h\n{good},100,1h\n{good},65000,30d\n"
    )
    run = await cli("batch", "--provider", "catfee", str(rows), *urls_args(urls, "catfee"))
    assert run.code == 2
    no_traceback(run)
    for line in ("line 3", "line 4", "line 5"):
        assert line in run.stderr
    assert "line 2" not in run.stderr
    assert sandbox.catfee.control.count() == 0


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_batch_json_lines_skip_invalid_and_summary(served: Any, tmp_path: Path) -> None:
    sandbox, urls = served
    targets = [sandbox.new_target() for _ in range(6)]
    sandbox.catfee.delivery.for_target(targets[1], Delivery.WRONG_RECEIVER)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"to": t, "energy": 65000}) + "\n" for t in targets)
        + '{"to": "TBad", "energy": 65000}\n'
    )
    journal = tmp_path / "batch.journal"
    run = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--skip-invalid",
        "--json",
        "--journal",
        str(journal),
        "--concurrency",
        "4",
        "--deadline",
        "5",
        *urls_args(urls, "catfee"),
    )
    assert run.code == 1, run.stderr  # one order was not delivered
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(results) == 6
    verdicts = sorted(r["verdict"] for r in results)
    assert verdicts == ["DELIVERED"] * 5 + ["PROVIDER_MISMATCH"]
    assert "line 7" in run.stderr  # the skipped row is named
    assert "DELIVERED" in run.stderr and "total" in run.stderr  # the summary table
    # Resume of a finished batch buys nothing more.
    creates = sandbox.catfee.control.count("create")
    again = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--skip-invalid",
        "--resume",
        "--journal",
        str(journal),
        *urls_args(urls, "catfee"),
    )
    assert again.code == 0, again.stderr
    assert sandbox.catfee.control.count("create") == creates
    # A journal that holds a batch is not silently reused for another run.
    reuse = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--skip-invalid",
        "--journal",
        str(journal),
        *urls_args(urls, "catfee"),
    )
    assert reuse.code == 2 and "--resume" in reuse.stderr


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_batch_spend_limit_stops_cleanly(served: Any, tmp_path: Path) -> None:
    sandbox, urls = served
    rows = tmp_path / "rows.csv"
    rows.write_text("to,energy\n" + "".join(f"{sandbox.new_target()},65000\n" for _ in range(5)))
    run = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--max-energy",
        "130000",
        "--concurrency",
        "1",
        *urls_args(urls, "catfee"),
    )
    assert run.code == 1
    assert "energy limit" in run.stderr
    assert sum(sandbox.catfee.charge_counts().values()) == 2


async def test_a_foreign_journal_is_refused_and_left_untouched(served: Any, tmp_path: Path) -> None:
    _, urls = served
    rows = tmp_path / "rows.csv"
    rows.write_text("to,energy\n")
    journal = tmp_path / "not-a-journal"
    journal.write_bytes(b"this is somebody's notes, not SQLite\n" * 10)
    before = journal.read_bytes()
    run = await cli(
        "batch",
        "--provider",
        "catfee",
        str(rows),
        "--journal",
        str(journal),
        "--resume",
        *urls_args(urls, "catfee"),
    )
    assert run.code == 2
    no_traceback(run)
    assert journal.read_bytes() == before


# --- sandbox and demo ---------------------------------------------------------------------------


def test_sandbox_command_serves_and_prints_urls_and_credentials() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "energy_async", "sandbox", "--port", "0", "--speed", "10"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        first = [process.stderr.readline() for _ in range(4)]
        text = "".join(first)
        assert "/catfee" in text and "/mefree" in text and "/trongrid" in text
        assert CATFEE_API_KEY in text and CATFEE_API_SECRET in text
        assert process.poll() is None  # still serving
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_demo_shows_the_whole_job_and_catches_the_cheat() -> None:
    started = anyio.current_time()
    run = await cli("demo", "--json")
    elapsed = anyio.current_time() - started
    assert run.code == 0, run.stderr
    verdicts = [json.loads(line)["verdict"] for line in run.stdout.splitlines()]
    assert verdicts == ["DELIVERED", "DELIVERED", "PROVIDER_MISMATCH"]
    for text in ("before", "after", "delegation tx", "timings", "demo finished"):
        assert text in run.stderr
    assert elapsed < 20.0


@pytest.mark.slow  # four CLI processes and a cheated order judged to its end: about 10 s
async def test_verify_an_existing_order_judges_it_again_and_buys_nothing(served: Any) -> None:
    sandbox, urls = served
    honest, cheated = sandbox.new_target(), sandbox.new_target()
    sandbox.mefree.delivery.for_target(cheated, Delivery.CLAIM_WITHOUT_DELEGATING)
    placed = {}
    for name, target in (("honest", honest), ("cheated", cheated)):
        run = await cli(
            "buy",
            "--provider",
            "mefree",
            "--to",
            target,
            "--energy",
            "65000",
            "--no-verify",
            "--client-order-id",
            f"again-{name}",
            "--json",
            *urls_args(urls, "mefree"),
        )
        assert run.code == 0, run.stderr
        placed[name] = run.json()["order"]["id"]
    creates = sandbox.mefree.control.count("create")
    verdicts = {}
    for name, order_id in placed.items():
        run = await cli(
            "verify",
            order_id,
            "--provider",
            "mefree",
            "--deadline",
            "4",
            "--json",
            *urls_args(urls, "mefree"),
        )
        no_traceback(run)
        verdicts[name] = (run.json()["verdict"], run.code)
        assert "evidence" in run.json()
    assert verdicts == {"honest": ("DELIVERED", 0), "cheated": ("PROVIDER_MISMATCH", 1)}
    assert sandbox.mefree.control.count("create") == creates  # nothing bought
    assert sandbox.mefree.charges("again-honest") == 1
    needs_provider = await cli("verify", placed["honest"], *urls_args(urls, "mefree"))
    assert needs_provider.code == 2 and "--provider" in needs_provider.stderr
