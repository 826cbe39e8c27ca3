"""TronSave and iTRX after a crash: a create whose answer was lost, resumed from the journal by
a new process (a fresh session, verifier and coordinator: nothing shared but the journal file).

Neither dedupes a repeated create, so the sandbox charges every POST; the resumed batch must
find the order (TronSave: in the account's history; iTRX: by ``out_trade_no``) or prove that
nothing was bought, and never POST blindly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from energy_async import Coordinator, ProviderSession, Verdict, Verifier
from energy_async._http import RateLimiter
from energy_async.errors import OutcomeUnknown
from energy_async.journal import EntryState, Journal
from energy_async.ledger import OrderLedger
from energy_async.models import OrderRequest
from energy_async.providers import Itrx, Provider, TronSave
from energy_async.reconcile import no_delegation_to
from energy_async.sandbox import Sandbox, SandboxURLs
from energy_async.sandbox.faults import Fault
from energy_async.sandbox.itrx import ITRX_API_KEY, ITRX_API_SECRET
from energy_async.sandbox.tronsave import TRONSAVE_API_KEY
from tests.coordination import FAST_POLL, FAST_RETRY

pytestmark = pytest.mark.anyio

SPEED = 20.0  # a block every 0.15 s: a delivered order settles in about a second


def provider_at(urls: SandboxURLs, name: str) -> Provider:
    if name == "itrx":
        url = urls.provider("itrx")
        return Itrx(api_key=ITRX_API_KEY, api_secret=ITRX_API_SECRET, base_url=url)
    return TronSave(api_key=TRONSAVE_API_KEY, base_url=urls.provider("tronsave"))


@asynccontextmanager
async def process(urls: SandboxURLs, name: str = "tronsave") -> AsyncIterator[Coordinator]:
    """What one run of the program holds: its own session, verifier, coordinator, ledger."""
    provider = provider_at(urls, name)
    async with (
        ProviderSession(provider, retry=FAST_RETRY, limiter=RateLimiter(10_000)) as session,
        Verifier(base_url=urls.trongrid, retry=FAST_RETRY) as verifier,
    ):
        yield Coordinator(session, verifier, poll=FAST_POLL, ledger=OrderLedger())


async def crash_after_lost_create(urls: SandboxURLs, path: Path, target: str) -> OrderRequest:
    """Run 1: the intent is journalled, the create is sent, its answer is lost, the run dies."""
    async with process(urls) as first, await Journal.open(path) as journal:
        request = first.session.prepare(target=target, energy=65_000)
        await journal.record_intents("tronsave", [request])
        await journal.mark_sent(request.client_order_id)
        with pytest.raises(OutcomeUnknown):
            await first.session.place(request)
    return request


async def resume(
    urls: SandboxURLs, path: Path, deadline: float = 6.0, name: str = "tronsave"
) -> list[Verdict]:
    """Run 2: a new process finishes the batch from the journal alone."""
    async with (
        process(urls, name) as second,
        await Journal.open(path, create=False) as journal,
        second.resume(journal, concurrency=4, deadline=deadline) as batch,
    ):
        return [result.verdict async for result in batch]


async def test_lost_create_resumed_in_a_new_process_is_found_and_charged_once(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(seed=5, speed=SPEED)
    sim = sandbox.providers["tronsave"]
    path = tmp_path / "batch.journal"
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
        request = await crash_after_lost_create(urls, path, target)
        verdicts = await resume(urls, path)
    orders = [order for order in sim.orders.values() if order.receiver == target]
    assert len(orders) == 1 and sim.control.count("create") == 1
    assert sim.control.count("list") >= 1  # reconciled from the history, not re-sent
    assert verdicts == [Verdict.DELIVERED]
    async with await Journal.open(path, create=False) as journal:
        entry = await journal.get(request.client_order_id)
    assert entry is not None and entry.state is EntryState.SETTLED
    assert entry.order is not None and entry.order.id == orders[0].key


async def test_itrx_create_sent_by_a_dead_process_is_looked_up_never_resent(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(seed=9, speed=SPEED)
    sim = sandbox.providers["itrx"]
    path = tmp_path / "batch.journal"
    async with sandbox.serve() as urls:
        provider = provider_at(urls, "itrx")
        request = provider.order_request(target=sandbox.new_target(), energy=65_000)
        async with await Journal.open(path) as journal:
            await journal.record_intents("itrx", [request])
            await journal.mark_sent(request.client_order_id)
        # The dead run's create reached iTRX; its answer never did.
        wire = provider.create_wire(request)
        signed = URL(provider.base_url).path + wire.path
        headers = provider.signer.headers(
            provider.api_key, provider.api_secret, sim.now(), "POST", signed, wire.body
        )
        async with (
            aiohttp.ClientSession() as http,
            http.post(provider.base_url + wire.path, data=wire.body, headers=headers) as reply,
        ):
            assert reply.status == 200
        verdicts = await resume(urls, path, name="itrx")
    assert verdicts == [Verdict.DELIVERED]
    assert sim.control.count("create") == 1 and sim.charges(request.client_order_id) == 1


async def test_a_resume_that_cannot_prove_anything_is_unknown_with_one_charge(
    tmp_path: Path,
) -> None:
    sandbox = Sandbox(seed=6, speed=SPEED)
    sim = sandbox.providers["tronsave"]
    path = tmp_path / "batch.journal"
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
        await crash_after_lost_create(urls, path, target)
        sim.control.faults.set_rate(Fault.SERVER_ERROR, 1.0, endpoint="list")
        verdicts = await resume(urls, path, deadline=1.5)
    assert verdicts == [Verdict.UNKNOWN]
    assert sim.control.count("create") == 1
    assert sum(order.receiver == target for order in sim.orders.values()) == 1


async def test_the_chain_witness_sees_any_delegation_to_the_receiver() -> None:
    sandbox = Sandbox(seed=8, speed=SPEED)
    async with sandbox.serve() as urls, process(urls) as coordinator:
        target = sandbox.new_target()
        assert await no_delegation_to(coordinator.verifier, target)
        result = await coordinator.buy(target=target, energy=65_000, deadline=6.0)
        assert result.verdict is Verdict.DELIVERED
        assert not await no_delegation_to(coordinator.verifier, target)
        # An address the node does not know answers ``{}``: that proves nothing.
        unknown = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
        assert not await no_delegation_to(coordinator.verifier, unknown)
