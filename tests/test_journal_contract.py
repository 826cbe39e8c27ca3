"""The journal contract, run against both backends: SQLite (embedded) and PostgreSQL (workers).

Whatever stores the journal, the batch and the CLI rely on exactly these rules; the
backend-specific tests live in ``test_journal.py`` (SQLite) and ``test_journal_pg.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from energy_async.errors import InvalidOrder, JournalError
from energy_async.journal import EntryState, Journal, JournalEntry
from energy_async.journal_contract import JournalBackend, is_dsn
from energy_async.journal_dictionary import ENTRY_DICTIONARY_1
from energy_async.models import (
    ConfirmStatus,
    DeliveryResult,
    Evidence,
    Order,
    OrderRequest,
    OrderStatus,
    Verdict,
)

pytestmark = pytest.mark.anyio

TARGET = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def request(n: int, energy: int = 65_000) -> OrderRequest:
    return OrderRequest(target=TARGET, energy=energy, client_order_id=f"order-{n}")


def order(cid: str, *, cost_sun: int | None = 2_000_000, energy: int = 65_000) -> Order:
    return Order(
        provider="catfee",
        id=f"provider-{cid}",
        client_order_id=cid,
        target=TARGET,
        energy=energy,
        status=OrderStatus.DELEGATE_SUCCESS,
        confirm_status=ConfirmStatus.DELEGATION_CONFIRMED,
        delegate_hash="ab" * 32,
        cost_sun=cost_sun,
        raw={"id": cid, "nested": {"list": [1, 2.5, None]}},
    )


def result(intent: OrderRequest, placed: Order | None, verdict: Verdict) -> DeliveryResult:
    return DeliveryResult(
        verdict=verdict,
        provider="catfee",
        client_order_id=intent.client_order_id,
        request=intent,
        order=placed,
        evidence=Evidence(expected_energy=65_000, notes=["a note"], started_at=1.25),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "batch.journal")
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


async def open_journal(location: str, *, create: bool = True) -> JournalBackend:
    if is_dsn(location):
        from energy_async.journal_pg import PgJournal

        return await PgJournal.open(location, create=create)
    return await Journal.open(location, create=create)


@pytest.fixture
async def journal(location: str) -> AsyncIterator[JournalBackend]:
    opened = await open_journal(location)
    async with opened:
        yield opened


async def settle(journal: JournalBackend, intent: OrderRequest, verdict: Verdict) -> Order:
    cid = intent.client_order_id
    await journal.mark_sent(cid)
    placed = order(cid)
    await journal.record_order(cid, placed)
    await journal.record_result(cid, result(intent, placed, verdict))
    return placed


async def test_both_backends_meet_the_protocol(journal: JournalBackend) -> None:
    assert isinstance(journal, JournalBackend)


async def test_an_entry_moves_forward_through_every_state(journal: JournalBackend) -> None:
    intent = request(1)
    cid = intent.client_order_id
    entry = await journal.record_intent("catfee", intent)
    assert (entry.state, entry.request, entry.order, entry.sent_at) == (
        EntryState.INTENDED,
        intent,
        None,
        None,
    )
    await journal.mark_sent(cid)
    sent = await journal.get(cid)
    assert sent is not None and sent.state is EntryState.SENT and sent.sent_at is not None
    placed = order(cid)
    await journal.record_order(cid, placed)
    ordered = await journal.get(cid)
    assert ordered is not None and (ordered.state, ordered.order) == (EntryState.ORDERED, placed)
    await journal.mark_sent(cid)  # a resend on resume keeps the state and the first sent_at
    again = await journal.get(cid)
    assert again is not None and again.state is EntryState.ORDERED
    assert again.sent_at == sent.sent_at
    await journal.record_result(cid, result(intent, placed, Verdict.UNDER_DELIVERED))
    settled = await journal.get(cid)
    assert settled is not None
    assert (settled.state, settled.verdict) == (EntryState.SETTLED, Verdict.UNDER_DELIVERED)
    assert settled.result == result(intent, placed, Verdict.UNDER_DELIVERED)
    with pytest.raises(JournalError, match="already settled"):
        await journal.mark_sent(cid)
    # A settled entry never moves back, even if an order update arrives late.
    await journal.record_order(cid, placed)
    late = await journal.get(cid)
    assert late is not None and late.state is EntryState.SETTLED


async def test_loading_intents_is_idempotent(journal: JournalBackend) -> None:
    intents = [request(n) for n in range(600)]
    assert await journal.record_intents("catfee", intents) == 600
    assert await journal.record_intents("catfee", intents[:300]) == 0
    assert await journal.record_intents("catfee", [*intents[:10], request(600)]) == 1
    assert (await journal.counts())["INTENDED"] == 601


async def test_an_id_is_never_repointed_at_another_order(journal: JournalBackend) -> None:
    await journal.record_intents("catfee", [request(1)])
    with pytest.raises(JournalError, match="different order"):
        await journal.record_intents("catfee", [request(2), request(1, energy=99_000)])
    with pytest.raises(JournalError, match="different order"):
        await journal.record_intents("mefree", [request(1)])
    assert await journal.get("order-2") is None  # the whole call recorded nothing
    with pytest.raises(InvalidOrder):
        await journal.record_intents("catfee", [OrderRequest(target=TARGET, energy=65_000)])


async def test_writes_for_unknown_or_foreign_ids_are_refused(journal: JournalBackend) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    with pytest.raises(JournalError, match="no intent"):
        await journal.mark_sent("order-404")
    with pytest.raises(JournalError, match="no intent"):
        await journal.record_order("order-404", order("order-404"))
    with pytest.raises(JournalError, match="carries client_order_id"):
        await journal.record_order("order-1", order("order-2"))
    # A refused write leaves the journal usable and the entry as it was.
    entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.INTENDED


async def test_counts_and_streams_say_what_is_left(journal: JournalBackend) -> None:
    intents = [request(n) for n in range(1_100)]  # more than two pages
    await journal.record_intents("catfee", intents)
    await settle(journal, intents[0], Verdict.DELIVERED)
    await settle(journal, intents[1], Verdict.REJECTED)
    await journal.mark_sent(intents[2].client_order_id)
    counts = await journal.counts()
    assert counts["SETTLED"] == 2 and counts["SENT"] == 1 and counts["INTENDED"] == 1_097
    assert counts["SETTLED:DELIVERED"] == 1 and counts["SETTLED:REJECTED"] == 1
    unsettled = await journal.unsettled("catfee")
    assert [e.client_order_id for e in unsettled] == [i.client_order_id for i in intents[2:]]
    assert await journal.unsettled("mefree") == []
    every = [entry.client_order_id async for entry in journal.iter_entries()]
    assert every == [intent.client_order_id for intent in intents]
    settled = [e.client_order_id async for e in journal.iter_entries(EntryState.SETTLED)]
    assert settled == ["order-0", "order-1"]


async def test_spent_counts_what_was_sent_and_not_refused(journal: JournalBackend) -> None:
    intents = [request(n) for n in range(4)]
    await journal.record_intents("catfee", intents)
    await settle(journal, intents[0], Verdict.DELIVERED)  # 65,000 energy, 2,000,000 sun
    await settle(journal, intents[1], Verdict.REJECTED)  # bought nothing
    await journal.mark_sent(intents[2].client_order_id)  # price not known yet
    assert await journal.spent() == (130_000, 2_000_000)
    assert await journal.spent(provider="mefree") == (0, 0)
    assert await journal.spent(since=2**40) == (0, 0)
    # Of that energy, the part no provider has priced (a spend guard must never count it free).
    assert await journal.unpriced_energy() == 65_000
    assert await journal.unpriced_energy(provider="mefree") == 0
    assert await journal.unpriced_energy(since=2**40) == 0


async def test_an_unknown_result_is_kept_but_does_not_settle(journal: JournalBackend) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    await journal.mark_sent(intent.client_order_id)
    await journal.record_result(intent.client_order_id, result(intent, None, Verdict.UNKNOWN))
    entry = await journal.get(intent.client_order_id)
    assert entry is not None
    assert (entry.state, entry.verdict) == (EntryState.SENT, Verdict.UNKNOWN)
    assert [e.client_order_id for e in await journal.unsettled()] == ["order-1"]


async def test_the_first_run_id_recorded_is_the_batchs(journal: JournalBackend) -> None:
    assert await journal.run_id(None) is None
    assert await journal.run_id("first") == "first"
    assert await journal.run_id("second") == "first"  # a second worker or a resume
    assert await journal.run_id(None) == "first"


async def test_a_location_opens_its_backend_through_journal_open(location: str) -> None:
    async with await Journal.open(location) as journal:
        assert isinstance(journal, JournalBackend)
        assert (type(journal).__name__ == "PgJournal") is is_dsn(location)
        await journal.record_intents("catfee", [request(1)])
        assert "@" not in journal.path or ":" not in journal.path.split("@")[0][13:]


async def test_what_was_committed_survives_reopening(location: str) -> None:
    intent = request(1)
    async with await open_journal(location) as journal:
        await journal.record_intent("catfee", intent)
        placed = await settle(journal, intent, Verdict.DELIVERED)
    async with await open_journal(location, create=False) as journal:
        entry = await journal.get(intent.client_order_id)
        assert entry is not None and entry.order == placed
        assert msgspec.to_builtins(entry.result) == msgspec.to_builtins(
            result(intent, placed, Verdict.DELIVERED)
        )


async def test_a_closed_journal_refuses_work(location: str) -> None:
    journal = await open_journal(location)
    await journal.aclose()
    await journal.aclose()  # closing twice does nothing
    with pytest.raises(JournalError, match="closed"):
        await journal.record_intents("catfee", [request(1)])
    with pytest.raises(JournalError, match="closed"):
        await journal.counts()


# --- the entry encoding -------------------------------------------------------------------------

TYPICAL = Path(__file__).parent / "fixtures" / "settled_result.json"
MAX_ENTRY_BYTES = 2_048  # issue 13: at most 2 KB per settled order, nothing lost


def typical_result() -> DeliveryResult:
    """A DELIVERED result as the coordinator wrote it against the sandbox (one tx, its term,
    its record, the status history and the provider's raw order)."""
    return msgspec.json.decode(TYPICAL.read_bytes(), type=DeliveryResult)


def stored_columns(location: str, cid: str) -> tuple[str, str | None, str | None]:
    """The entry's request, order and result columns as the backend stores them."""
    query = "SELECT request, order_json, result FROM {}entries WHERE client_order_id = "
    if is_dsn(location):
        import psycopg

        with psycopg.connect(location) as connection:
            row = connection.execute(
                query.format("energy_async.") + "%s",  # type: ignore[arg-type]
                (cid,),
            ).fetchone()
    else:
        with contextlib.closing(sqlite3.connect(location)) as connection:
            row = connection.execute(query.format("") + "?", (cid,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def write_columns(location: str, cid: str, order_json: str, result_json: str) -> None:
    """Overwrite an entry's order and result columns (as an older energy_async wrote them)."""
    statement = "UPDATE {}entries SET order_json = {p}, result = {p} WHERE client_order_id = {p}"
    if is_dsn(location):
        import psycopg

        with psycopg.connect(location) as connection:
            connection.execute(
                statement.format("energy_async.", p="%s"),  # type: ignore[arg-type]
                (order_json, result_json, cid),
            )
    else:
        with contextlib.closing(sqlite3.connect(location)) as connection, connection:
            connection.execute(statement.format("", p="?"), (order_json, result_json, cid))


async def record_typical(location: str) -> DeliveryResult:
    """Record the typical order to its verdict, then close the journal (SQLite's lock is
    exclusive while it is open, so the columns are read after)."""
    typical = typical_result()
    assert typical.order is not None
    cid = typical.client_order_id
    async with await open_journal(location) as journal:
        await journal.record_intents(typical.provider, [typical.request])
        await journal.mark_sent(cid)
        await journal.record_order(cid, typical.order)
        await journal.record_result(cid, typical)
    return typical


async def entry_of(location: str, cid: str) -> JournalEntry | None:
    async with await open_journal(location, create=False) as journal:
        return await journal.get(cid)


async def test_a_typical_settled_order_takes_at_most_2_kb_and_reads_back_whole(
    location: str,
) -> None:
    typical = await record_typical(location)
    whole = len(msgspec.json.encode(typical))
    columns = stored_columns(location, typical.client_order_id)
    size = sum(len(column.encode()) for column in columns if column is not None)
    assert size <= MAX_ENTRY_BYTES, f"{size} bytes per settled order (plain JSON: {whole})"
    entry = await entry_of(location, typical.client_order_id)
    assert entry is not None and entry.state is EntryState.SETTLED
    assert entry.result == typical  # nothing a resume or a report needs is lost
    assert entry.order == typical.order
    assert entry.request == typical.request


async def test_entries_written_in_the_plain_json_encoding_are_still_read(location: str) -> None:
    typical = await record_typical(location)
    assert typical.order is not None
    cid = typical.client_order_id
    older_order = msgspec.structs.replace(typical.order, status=OrderStatus.PAYMENT_SUCCESS)
    plain_order, plain_result = msgspec.json.encode(older_order), msgspec.json.encode(typical)
    write_columns(location, cid, plain_order.decode(), plain_result.decode())
    entry = await entry_of(location, cid)
    assert entry is not None
    assert entry.result == typical
    assert entry.order == older_order  # the order column, when there is one, is the latest


async def test_a_damaged_encoded_result_is_refused_naming_the_entry(location: str) -> None:
    typical = await record_typical(location)
    cid = typical.client_order_id
    write_columns(location, cid, msgspec.json.encode(typical.order).decode(), "z1:bm90IHpsaWI=")
    with pytest.raises(JournalError, match=f"journal entry '{cid}' is damaged"):
        await entry_of(location, cid)


def test_the_preset_dictionary_of_entry_encoding_1_never_changes() -> None:
    # Entries on disk were deflated with these exact bytes; a new dictionary needs a new prefix.
    digest = hashlib.sha256(ENTRY_DICTIONARY_1).hexdigest()
    assert digest == "b2e313e0e14859d256e93e029a3b108061d321fc3094f7e25cf21e288231ec23"
