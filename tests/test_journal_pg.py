"""The PostgreSQL journal's own promises: its schema, many workers, limits, connection loss."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator

import anyio
import msgspec
import pytest

from energy_async.errors import JournalError, JournalUnavailable
from energy_async.journal import EntryState
from energy_async.journal_dictionary import ENTRY_DICTIONARY_1
from energy_async.models import DeliveryResult, OrderRequest, Verdict
from tests.pg import require_driver
from tests.test_journal_contract import TARGET, order, request, result

pytestmark = pytest.mark.anyio

require_driver()

import psycopg  # noqa: E402

from energy_async.journal_pg import (  # noqa: E402
    SCHEMA_VERSION,
    PgJournal,
    SpendLimits,
    _over_limit,
    redact_dsn,
)


@pytest.fixture
async def journal(pg_dsn: str) -> AsyncIterator[PgJournal]:
    async with await PgJournal.open(pg_dsn) as opened:
        yield opened


def sql(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        cursor = connection.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


# --- the schema -------------------------------------------------------------------------------


async def test_the_schema_is_created_on_first_use_and_versioned(pg_dsn: str) -> None:
    with pytest.raises(JournalError, match="no energy_async journal"):
        await PgJournal.open(pg_dsn, create=False)
    assert sql(pg_dsn, "SELECT 1 FROM pg_namespace WHERE nspname = 'energy_async'") == []
    async with await PgJournal.open(pg_dsn) as journal:
        await journal.record_intents("catfee", [request(1)])
    meta = dict(sql(pg_dsn, "SELECT key, value FROM energy_async.meta"))
    assert meta == {"application": "energy_async journal", "schema_version": str(SCHEMA_VERSION)}
    async with await PgJournal.open(pg_dsn, create=False) as journal:
        assert (await journal.counts())["INTENDED"] == 1


async def test_many_openers_at_once_create_the_schema_once(pg_dsn: str) -> None:
    async def one() -> None:
        async with await PgJournal.open(pg_dsn) as journal:
            await journal.counts()

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(one)
    assert sql(pg_dsn, "SELECT count(*) FROM energy_async.meta") == [(2,)]


async def test_a_newer_schema_is_refused_and_left_as_is(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn):
        pass
    sql(pg_dsn, "UPDATE energy_async.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(JournalError, match="newer energy_async"):
        await PgJournal.open(pg_dsn)
    assert ("99",) in sql(pg_dsn, "SELECT value FROM energy_async.meta")


@pytest.mark.parametrize(
    "foreign",
    [
        "CREATE TABLE energy_async.accounts (id int)",
        "CREATE TABLE energy_async.meta (key text, value text);"
        " INSERT INTO energy_async.meta VALUES ('application', 'billing')",
    ],
)
async def test_a_foreign_schema_is_refused_and_left_as_is(pg_dsn: str, foreign: str) -> None:
    sql(pg_dsn, "CREATE SCHEMA energy_async")
    for statement in foreign.split(";"):
        sql(pg_dsn, statement)
    tables = "SELECT relname FROM pg_class WHERE relnamespace = 'energy_async'::regnamespace"
    before = sql(pg_dsn, tables)
    with pytest.raises(JournalError, match="another application"):
        await PgJournal.open(pg_dsn)
    assert sql(pg_dsn, tables) == before


async def test_a_damaged_schema_is_refused(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn):
        pass
    sql(pg_dsn, "DROP TABLE energy_async.credits")
    with pytest.raises(JournalError, match="damaged"):
        await PgJournal.open(pg_dsn)


async def test_an_unreachable_server_is_one_line_without_the_password(pg_dsn: str) -> None:
    bad = "postgresql://user:hunter2secret@127.0.0.1:1/nothing"
    with pytest.raises(JournalError) as caught:
        await PgJournal.open(bad)
    error = caught.value
    for shown in (str(error), repr(error), repr(error.__cause__), repr(error.__context__)):
        assert "hunter2secret" not in shown
    assert "\n" not in str(error)
    assert redact_dsn(bad) == "postgresql://user@127.0.0.1:1/nothing"
    assert redact_dsn("postgresql://u:p@h/db?password=x&sslmode=require") == "postgresql://u@h/db"


async def test_credential_like_raw_fields_are_not_stored(journal: PgJournal, pg_dsn: str) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    placed = order(intent.client_order_id)
    raw = {"id": 1, "api_key": "K-SECRET", "Signature": "S-SECRET"}
    leaky = msgspec.structs.replace(placed, raw=raw)
    await journal.record_order(intent.client_order_id, leaky)
    await journal.record_result(intent.client_order_id, result(intent, leaky, Verdict.DELIVERED))
    rows = sql(pg_dsn, "SELECT * FROM energy_async.entries")
    (stored,) = sql(pg_dsn, "SELECT result FROM energy_async.entries")
    # The result is stored compressed (entry encoding 1), the order inside it: look inside too.
    packed = str(stored[0]).removeprefix("z1:")
    inflate = zlib.decompressobj(zdict=ENTRY_DICTIONARY_1)
    dump = repr(rows) + inflate.decompress(base64.b64decode(packed)).decode()
    assert "K-SECRET" not in dump and "S-SECRET" not in dump and '"id":1' in dump.replace(" ", "")


def test_the_driver_is_imported_only_when_a_dsn_is_used(tmp_path: object) -> None:
    code = (
        "import sys, anyio, energy_async\n"
        "from energy_async.journal import Journal\n"
        "async def main():\n"
        f"    async with await Journal.open({str(tmp_path)!r} + '/j.db'): pass\n"
        "anyio.run(main)\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported'\n"
        "assert 'energy_async.journal_pg' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- many workers -----------------------------------------------------------------------------


async def test_a_second_loader_adds_nothing(pg_dsn: str) -> None:
    intents = [request(n) for n in range(1_000)]
    added: list[int] = []

    async def load() -> None:
        async with await PgJournal.open(pg_dsn) as journal:
            for start in range(0, len(intents), 256):
                added.append(await journal.record_intents("catfee", intents[start : start + 256]))

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(load)
    assert sum(added) == 1_000
    assert sql(pg_dsn, "SELECT count(*) FROM energy_async.entries") == [(1_000,)]


async def test_workers_claim_disjoint_orders(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as loader:
        await loader.record_intents("catfee", [request(n) for n in range(300)])
    claimed: list[list[str]] = []

    async def work() -> None:
        async with await PgJournal.open(pg_dsn) as journal:
            mine: list[str] = []
            while (claim := await journal.claim("catfee", 7, lease=30)).entries:
                mine += [entry.client_order_id for entry in claim.entries]
            claimed.append(mine)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(work)
    every = [cid for mine in claimed for cid in mine]
    assert sorted(every) == sorted(f"order-{n}" for n in range(300))  # each once, none lost
    assert len(set(every)) == 300


async def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        await first.record_intents("catfee", [request(1), request(2)])
        taken = await first.claim("catfee", 1, lease=0.3)
        assert [e.client_order_id for e in taken.entries] == ["order-1"]
        await first.mark_sent("order-1")
        assert set(first.held) == {"order-1"}
        live = await second.claim("catfee", 10, lease=30)
        assert [e.client_order_id for e in live.entries] == ["order-2"]
        assert await second.others_working("catfee") is not None
        await anyio.sleep(0.4)  # the first worker "died": its lease runs out on the server clock
        assert await second.others_working("catfee") is None
        takeover = await second.claim("catfee", 10, lease=30)
        assert [(e.client_order_id, e.state) for e in takeover.entries] == [
            ("order-1", EntryState.SENT)  # sent already: re-attached by replay, never re-bought
        ]
        assert await first.renew(30) == ("order-1",)  # the first worker learns it lost it
        assert first.held == ()


async def test_a_heartbeat_keeps_a_lease(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        await first.record_intents("catfee", [request(1)])
        await first.claim("catfee", 1, lease=0.3)
        for _ in range(3):
            await anyio.sleep(0.15)
            assert await first.renew(0.3) == ()
        assert (await second.claim("catfee", 10, lease=30)).entries == ()


async def test_settling_ends_the_lease_and_unknown_waits_for_a_resume(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        await first.record_intents("catfee", [request(1), request(2)])
        await first.claim("catfee", 2, lease=30)
        one, two = request(1), request(2)
        await first.mark_sent("order-1")
        await first.record_result("order-1", result(one, None, Verdict.UNKNOWN))
        await first.mark_sent("order-2")
        await first.record_result("order-2", result(two, order("order-2"), Verdict.DELIVERED))
        assert first.held == ()
        assert (await second.claim("catfee", 10, lease=30)).entries == ()  # UNKNOWN: resume
        resumed = await second.claim("catfee", 10, lease=30, unknown_before=2**40)
        assert [e.client_order_id for e in resumed.entries] == ["order-1"]


# --- limits that hold across workers ----------------------------------------------------------


def test_over_limit_names_the_limit_it_would_cross() -> None:
    limits = SpendLimits(max_energy=100, max_sun=1_000, max_energy_per_hour=50)
    assert _over_limit(limits, 100, 1_000, 50, 0) is None
    assert "energy limit" in (_over_limit(limits, 101, 0, 0, 0) or "")
    assert "sun limit" in (_over_limit(limits, 0, 1_001, 0, 0) or "")
    assert "hourly energy" in (_over_limit(limits, 0, 0, 51, 0) or "")
    assert _over_limit(SpendLimits(), 10**18, 10**18, 10**18, 10**18) is None


async def test_workers_together_never_cross_an_energy_limit(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as loader:
        await loader.record_intents("catfee", [request(n) for n in range(100)])
    limits = SpendLimits(max_energy=65_000 * 37)
    claimed: list[int] = []
    reasons: list[str | None] = []

    async def work() -> None:
        async with await PgJournal.open(pg_dsn) as journal:
            while True:
                claim = await journal.claim("catfee", 3, lease=30, limits=limits)
                claimed.append(len(claim.entries))
                if not claim.entries:
                    reasons.append(claim.stop_reason)
                    return

    async with anyio.create_task_group() as group:
        for _ in range(5):
            group.start_soon(work)
    assert sum(claimed) == 37
    assert all(reason and "energy limit" in reason for reason in reasons)
    assert sql(pg_dsn, "SELECT energy FROM energy_async.budget") == [(65_000 * 37,)]


async def test_a_sun_limit_lets_one_unpriced_order_out_then_reserves_by_price(
    journal: PgJournal, pg_dsn: str
) -> None:
    await journal.record_intents("catfee", [request(n) for n in range(10)])
    limits = SpendLimits(max_sun=5_000_000)
    first = await journal.claim("catfee", 10, lease=30, limits=limits)
    assert [e.client_order_id for e in first.entries] == ["order-0"]  # no price known yet
    assert first.must_wait
    assert (await journal.claim("catfee", 10, lease=30, limits=limits)).entries == ()
    await journal.mark_sent("order-0")
    await journal.record_order("order-0", order("order-0", cost_sun=2_000_000))  # price known
    second = await journal.claim("catfee", 10, lease=30, limits=limits)
    assert [e.client_order_id for e in second.entries] == ["order-1"]  # 2M + 2M <= 5M < 6M
    assert second.stop_reason is not None and "sun limit" in second.stop_reason
    # A refused order bought nothing: its reservation is given back.
    await journal.record_result("order-1", result(request(1), None, Verdict.REJECTED))
    third = await journal.claim("catfee", 10, lease=30, limits=limits)
    assert [e.client_order_id for e in third.entries] == ["order-2"]
    assert sql(pg_dsn, "SELECT energy, sun FROM energy_async.budget") == [(130_000, 4_000_000)]


async def test_a_delegation_is_credited_to_one_order_only(pg_dsn: str) -> None:
    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        await first.record_intents("catfee", [request(1), request(2)])
        assert await first.claim_credits("order-1", TARGET, ["tx-a", "tx-b"]) == {}
        held = await second.claim_credits("order-2", TARGET, ["tx-b", "tx-c"])
        assert held == {"tx-b": "order-1"}
        assert await first.claim_credits("order-1", TARGET, ["tx-a"]) == {}  # again: no change
    assert sorted(sql(pg_dsn, "SELECT tx_id, client_order_id FROM energy_async.credits")) == [
        ("tx-a", "order-1"),
        ("tx-b", "order-1"),
        ("tx-c", "order-2"),
    ]


async def test_a_claim_racing_another_for_the_same_tx_sees_the_winner(pg_dsn: str) -> None:
    """Two workers claim one tx at the same moment: the one that waits for the other's commit
    must learn that it lost, not read a snapshot taken before that commit."""
    async with await PgJournal.open(pg_dsn) as journal:
        await journal.record_intents("catfee", [request(1), request(2)])
        async with await psycopg.AsyncConnection.connect(pg_dsn) as first:
            held: dict[str, str] = {}
            async with anyio.create_task_group() as group, first.transaction():
                await first.execute(
                    "INSERT INTO energy_async.credits VALUES ('tx-a', 'order-1', %s, 0)",
                    (TARGET,),
                )

                async def second() -> None:
                    held.update(await journal.claim_credits("order-2", TARGET, ["tx-a"]))

                group.start_soon(second)
                await waiting_for_a_lock(pg_dsn)  # the second claim waits for the first
                # The first commits here; the second goes on and must see it.
    assert held == {"tx-a": "order-1"}
    assert sql(pg_dsn, "SELECT tx_id, client_order_id FROM energy_async.credits") == [
        ("tx-a", "order-1")
    ]


async def waiting_for_a_lock(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as watcher:
        with anyio.fail_after(10):
            while True:
                cursor = await watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                row = await cursor.fetchone()
                if row is not None and row[0] > 0:
                    return
                await anyio.sleep(0.01)


# --- connection loss --------------------------------------------------------------------------


def cut(dsn: str, worker: str) -> int:
    rows = sql(
        dsn,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        f" WHERE application_name = 'energy_async {worker}'",
    )
    return int(rows[0][0])  # type: ignore[call-overload]


async def test_a_cut_connection_is_reestablished_and_the_write_committed(
    journal: PgJournal, pg_dsn: str
) -> None:
    await journal.record_intents("catfee", [request(1)])
    assert cut(pg_dsn, journal.worker) == 1
    await journal.mark_sent("order-1")  # waits for the reconnection, then commits
    entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.SENT


async def test_no_reconnection_before_the_leases_end_names_the_held_orders(
    journal: PgJournal, pg_dsn: str
) -> None:
    await journal.record_intents("catfee", [request(1), request(2)])
    await journal.claim("catfee", 2, lease=0.5)
    database = pg_dsn.rsplit("/", 1)[1]
    server = pg_dsn.rsplit("/", 1)[0] + "/postgres"
    sql(server, f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
    try:
        cut(pg_dsn.rsplit("/", 1)[0] + "/postgres", journal.worker)
        with pytest.raises(JournalUnavailable) as caught:
            await journal.mark_sent("order-1")
        assert caught.value.held == ("order-1", "order-2")
        assert "order-1, order-2" in str(caught.value)
    finally:
        sql(server, f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    # Nothing was written: the order is still INTENDED, free for another worker once expired.
    async with await PgJournal.open(pg_dsn) as other:
        entry = await other.get("order-1")
        assert entry is not None and entry.state is EntryState.INTENDED


async def test_a_dead_workers_orders_are_taken_over_even_past_a_spend_limit(
    pg_dsn: str,
) -> None:
    limits = SpendLimits(max_energy=65_000 * 2)
    async with await PgJournal.open(pg_dsn) as alive:
        await alive.record_intents("catfee", [request(n) for n in range(10)])
        # A dead worker reserved (and spent the budget on) the last two rows; its lease ended.
        sql(pg_dsn, "UPDATE energy_async.entries SET state = 'SETTLED' WHERE seq <= 6")
        sql(
            pg_dsn,
            "UPDATE energy_async.entries SET holder = 'dead', lease_until = 0, state = 'SENT',"
            " reserved_at = 1, spend_energy = energy WHERE seq >= 9",
        )
        sql(pg_dsn, "UPDATE energy_async.budget SET energy = 130000")
        # order-6 and order-7 come first by seq but the budget is spent: the dead worker's
        # orders are still taken over (their money is counted already).
        taken = await alive.claim("catfee", 2, lease=30, limits=limits)
        assert [e.client_order_id for e in taken.entries] == ["order-8", "order-9"]
        refused = await alive.claim("catfee", 2, lease=30, limits=limits)
        assert refused.entries == () and "energy limit" in (refused.stop_reason or "")


async def test_a_settled_delegation_is_credited_once_across_workers(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    from energy_async.models import DelegationTx

    def delivered_by(intent: OrderRequest, txid: str) -> DeliveryResult:
        base = result(intent, order(intent.client_order_id), Verdict.DELIVERED)
        evidence = msgspec.structs.replace(
            base.evidence, delegation=DelegationTx(txid=txid, found=True)
        )
        return msgspec.structs.replace(base, evidence=evidence)

    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        one, two = request(1), request(2)
        await first.record_intents("catfee", [one, two])
        await first.record_result("order-1", delivered_by(one, "tx-a"))
        with caplog.at_level("ERROR", logger="energy_async.journal"):
            await second.record_result("order-2", delivered_by(two, "tx-a"))
        assert "tx-a" in caplog.text and "order-2" in caplog.text
        await first.record_result("order-1", delivered_by(one, "tx-a"))  # again: no change
    assert sql(pg_dsn, "SELECT tx_id, client_order_id FROM energy_async.credits") == [
        ("tx-a", "order-1")
    ]


async def test_a_leaving_worker_gives_back_what_it_never_sent(pg_dsn: str) -> None:
    limits = SpendLimits(max_energy=65_000 * 10)
    async with await PgJournal.open(pg_dsn) as journal:
        await journal.record_intents("catfee", [request(n) for n in range(5)])
        claim = await journal.claim("catfee", 5, lease=30, limits=limits)
        assert len(claim.entries) == 5
        await journal.mark_sent("order-0")
        await journal.release_held()
        assert journal.held == ()
    assert sql(pg_dsn, "SELECT energy FROM energy_async.budget") == [(65_000,)]
    assert sql(pg_dsn, "SELECT count(*) FROM energy_async.entries WHERE holder IS NOT NULL") == [
        (0,)
    ]
    async with await PgJournal.open(pg_dsn) as other:  # free for others at once
        again = await other.claim("catfee", 10, lease=30, limits=limits)
        assert len(again.entries) == 5


async def test_the_windows_of_other_workers_orders_to_a_target(pg_dsn: str) -> None:
    """What the EnergyLimit delta rule must see: orders in flight elsewhere, and orders that
    ended without a proven delivery; never those proven, never unclaimed ones."""
    other = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
    intents = [request(n) for n in range(7)]
    intents[6] = OrderRequest(target=other, energy=65_000, client_order_id="order-6")
    async with await PgJournal.open(pg_dsn) as first, await PgJournal.open(pg_dsn) as second:
        await first.record_intents("catfee", intents)
        claimed = await first.claim("catfee", 5, lease=30)
        assert [e.client_order_id for e in claimed.entries] == [f"order-{n}" for n in range(5)]
        for n in (1, 2, 3, 4):
            await first.mark_sent(f"order-{n}")
        await first.record_result(
            "order-2", result(intents[2], order("order-2"), Verdict.NOT_DELIVERED)
        )
        await first.record_result(
            "order-3", result(intents[3], order("order-3"), Verdict.DELIVERED)
        )
        await first.record_result("order-4", result(intents[4], None, Verdict.REJECTED))
        before = time.time()
        windows = await second.windows_touching([TARGET, other])
        mine = await first.windows_touching([TARGET])
    assert windows[other] == []  # order-6: never claimed, never sent
    seen = {window.key: window for window in windows[TARGET]}
    # order-0: claimed by a live worker, about to be sent; order-1: sent; order-2: ended
    # without its delivery proven. order-3 proved it, order-4 bought nothing, order-5 waits.
    assert sorted(seen) == ["order-0", "order-1", "order-2"]
    assert seen["order-0"].end is None and seen["order-0"].start >= before
    assert seen["order-1"].end is None and seen["order-1"].start < before
    assert seen["order-2"].lingers and seen["order-2"].end is not None
    assert [window.key for window in mine[TARGET]] == ["order-2"]  # what it holds is its own
