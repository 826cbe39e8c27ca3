"""Secrets nowhere: after every failure path, the sandbox's test keys and secrets (and a
TronGrid key) are absent from errors (str, repr, every chained cause), DEBUG logs, CLI output,
the journal and the benchmark results.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from energy_async import CatFee, ProviderSession, Verifier
from energy_async._http import RetryPolicy, redact_url
from energy_async.errors import EnergyError
from energy_async.models import Order
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Fault,
    Sandbox,
)
from tests.test_cli import ENV, SPEED, cli, urls_args

pytestmark = pytest.mark.anyio

TRONGRID_KEY = "tg-secret-key-0123456789"
SECRETS = (CATFEE_API_KEY, CATFEE_API_SECRET, MEFREE_API_KEY, MEFREE_API_SECRET, TRONGRID_KEY)
FAST = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)


def assert_clean(text: str, where: str) -> None:
    found = [secret for secret in SECRETS if secret in text]
    assert not found, f"{where} holds a secret: {text[:2000]}"


def chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def assert_error_clean(error: BaseException) -> None:
    for link in chain(error):
        assert_clean(str(link), f"str({type(link).__name__})")
        assert_clean(repr(link), f"repr({type(link).__name__})")
        for value in vars(link).values() if hasattr(link, "__dict__") else ():
            assert_clean(repr(value), f"an attribute of {type(link).__name__}")


@pytest.fixture
async def garbage_server() -> AsyncIterator[str]:
    """A peer that answers every request with an unparseable HTTP response: aiohttp raises
    ClientResponseError, whose request_info holds every header that was sent."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await stream.receive()
                await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}")
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, answer)
        yield f"http://127.0.0.1:{port}"
        group.cancel_scope.cancel()


async def test_a_garbled_http_answer_chains_no_request_headers(
    garbage_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=garbage_server)
    async with ProviderSession(catfee, retry=FAST) as session:
        with pytest.raises(EnergyError) as caught:
            await session.account()
        assert_error_clean(caught.value)
        target = Sandbox(seed=1).new_target()
        with pytest.raises(EnergyError) as caught_create:
            await session.create_order(target=target, energy=65_000)
        assert_error_clean(caught_create.value)
    async with Verifier(base_url=garbage_server, api_key=TRONGRID_KEY, retry=FAST) as verifier:
        with pytest.raises(EnergyError) as caught_node:
            await verifier.snapshot(target)
        assert_error_clean(caught_node.value)
    assert_clean(caplog.text, "the DEBUG log")


@pytest.mark.parametrize(
    "fault",
    [Fault.HTML_BODY, Fault.TRUNCATED_JSON, Fault.WRONG_TYPES, Fault.SERVER_ERROR, Fault.NON_JSON],
)
async def test_bad_provider_answers_leave_no_secret_in_the_error_or_the_log(
    fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox = Sandbox(seed=2)
    async with sandbox.serve() as urls:
        sandbox.catfee.control.faults.inject(fault, times=100)
        catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee)
        async with ProviderSession(catfee, retry=FAST) as session:
            with pytest.raises(EnergyError) as caught:
                await session.account()
    assert_error_clean(caught.value)
    assert_clean(caplog.text, "the DEBUG log")


def test_order_raw_drops_credential_like_keys_and_urls_are_redacted() -> None:
    order = Order(
        provider="catfee",
        id="1",
        client_order_id="a",
        target="T",
        energy=65_000,
        raw={"api_key": CATFEE_API_KEY, "CF-ACCESS-SIGN": "sig", "apiSecret": "x", "quantity": 1},
    )
    assert order.raw == {"quantity": 1}
    assert redact_url("https://me:pw@api.catfee.io/v1?key=s3#f") == "https://api.catfee.io/v1"
    assert redact_url("http://[::1") == "<not a URL>"


def test_benchmark_results_hold_no_secret() -> None:
    results = Path(__file__).parent.parent / "benchmarks" / "results"
    files = [path for path in results.rglob("*") if path.is_file()]
    assert files, "no benchmark results to check"
    for path in files:
        assert_clean(path.read_text(errors="replace"), str(path))


@pytest.mark.slow
async def test_cli_failure_paths_print_and_journal_no_secret(tmp_path: Path) -> None:
    sandbox = Sandbox(seed=9, speed=SPEED)
    env = {**ENV, "TRONGRID_API_KEY": TRONGRID_KEY}
    async with sandbox.serve() as urls:
        targets = [sandbox.new_target() for _ in range(3)]
        rows = tmp_path / "rows.csv"
        rows.write_text("to,energy\n" + "".join(f"{t},65000\n" for t in targets))
        runs: list[Any] = []
        journals: list[Path] = []

        async def batch(name: str, *args: str, run_env: dict[str, str] = env) -> None:
            journal = tmp_path / f"{name}.journal"
            journals.append(journal)
            runs.append(
                await cli(
                    "batch",
                    "--provider",
                    "catfee",
                    str(rows),
                    "-vv",
                    "--json",
                    "--deadline",
                    "1.5",
                    "--journal",
                    str(journal),
                    *args,
                    *urls_args(urls, "catfee"),
                    env=run_env,
                )
            )

        await batch("wrong-secret", run_env={**env, "CATFEE_API_SECRET": CATFEE_API_SECRET[::-1]})
        sandbox.catfee.control.faults.inject(Fault.SERVER_ERROR, times=100_000, endpoint="create")
        await batch("provider-500")
        sandbox.catfee.control.faults.clear()
        sandbox.catfee.control.faults.inject(Fault.HTML_BODY, times=100_000, endpoint="create")
        await batch("provider-html")
        sandbox.catfee.control.faults.clear()
        sandbox.trongrid.unreachable = True
        await batch("trongrid-down")
        sandbox.trongrid.unreachable = False
        sandbox.catfee.control.unreachable = True
        await batch("provider-down")
        sandbox.catfee.control.unreachable = False
        runs.append(
            await cli(
                "buy",
                "--provider",
                "catfee",
                "--to",
                targets[0],
                "--energy",
                "65000",
                "-vv",
                "--provider-url",
                f"{urls.catfee}?key={CATFEE_API_SECRET}",
                env=env,
            )
        )
    codes = [run.code for run in runs]
    assert codes[0] == 2 and codes[3:] == [4, 4, 2], [run.stderr[-500:] for run in runs]
    assert codes[1] == 3  # every create failed: UNKNOWN, to resolve by client_order_id
    for run in runs:
        assert "Traceback" not in run.stderr.split("DEBUG energy_async.cli")[0]
        assert_clean(run.stdout, "CLI stdout")
        assert_clean(run.stderr, "CLI stderr (with -vv DEBUG logs)")
    for journal in journals:
        for path in (journal, Path(f"{journal}-wal")):
            if path.exists():
                assert_clean(path.read_bytes().decode("latin-1"), str(path))
