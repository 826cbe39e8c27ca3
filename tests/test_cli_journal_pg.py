"""The CLI's PostgreSQL commands: ``journal migrate|status DSN`` and ``batch --status``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.pg import require_driver

require_driver()

import psycopg  # noqa: E402


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "energy_async", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CATFEE_API_KEY": "k", "CATFEE_API_SECRET": "s"},
        timeout=60,
    )


@pytest.mark.slow  # four CLI runs
def test_migrate_creates_the_schema_and_status_reports_it(pg_dsn: str) -> None:
    missing = cli("journal", "status", pg_dsn)
    assert missing.returncode == 2 and "no energy_async journal" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    migrated = cli("journal", "migrate", pg_dsn)
    assert migrated.returncode == 0, migrated.stderr
    assert "journal ready" in migrated.stderr and "schema version 1" in migrated.stderr
    status = cli("journal", "status", pg_dsn, "--json")
    assert status.returncode == 0, status.stderr
    assert '"schema_version":1' in status.stdout and '"workers":0' in status.stdout
    again = cli("journal", "migrate", pg_dsn)  # migrating twice changes nothing
    assert again.returncode == 0


def test_a_foreign_schema_is_refused_by_migrate_in_one_line(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("CREATE SCHEMA energy_async; CREATE TABLE energy_async.t (id int)")
    refused = cli("journal", "migrate", pg_dsn)
    assert refused.returncode == 2
    assert "another application" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
def test_an_unreachable_database_never_shows_its_password() -> None:
    dsn = "postgresql://batch:s3cr3t-pw@127.0.0.1:1/payouts"
    for args in (
        ("journal", "status", dsn),
        ("batch", "--provider", "catfee", "x.csv", "--journal", dsn, "--status"),
    ):
        answer = cli(*args)
        assert answer.returncode == 2, answer.stderr
        assert "s3cr3t-pw" not in answer.stderr + answer.stdout
        assert "postgresql://batch@127.0.0.1:1/payouts" in answer.stderr
        assert "Traceback" not in answer.stderr


def test_batch_status_needs_a_shared_journal(tmp_path: object) -> None:
    answer = cli("batch", "--provider", "catfee", "x.csv", "--status")
    assert answer.returncode == 2 and "--status needs --journal postgresql://" in answer.stderr


@pytest.mark.parametrize("action", ["migrate", "status"])
def test_journal_commands_take_only_a_dsn(action: str) -> None:
    answer = cli("journal", action, "/tmp/some.journal")
    assert answer.returncode == 2 and "expected a postgresql:// DSN" in answer.stderr


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_worker_that_cannot_reconnect_before_its_leases_end_exits_4(
    pg_dsn: str, tmp_path: Path
) -> None:
    from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox

    sandbox = Sandbox(seed=3, speed=0.0)  # a frozen chain: every order stays in flight
    rows = tmp_path / "orders.csv"
    rows.write_text("to,energy\n" + "".join(f"{sandbox.new_target()},65000\n" for _ in range(3)))
    server, database = pg_dsn.rsplit("/", 1)
    env = {**os.environ, "CATFEE_API_KEY": CATFEE_API_KEY, "CATFEE_API_SECRET": CATFEE_API_SECRET}
    err = tmp_path / "worker.err"
    async with sandbox.serve() as urls:
        command = [
            sys.executable, "-m", "energy_async", "batch", "--provider", "catfee", str(rows),
            "--journal", pg_dsn, "--lease", "1.5", "--deadline", "60",
            "--provider-url", urls.catfee, "--trongrid-url", urls.trongrid,
        ]  # fmt: skip
        with err.open("wb") as err_file:
            async with await anyio.open_process(command, stderr=err_file, env=env) as worker:
                with anyio.fail_after(30):
                    while len(sandbox.catfee.charge_counts()) < 3:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                    admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = %s AND application_name LIKE 'energy_async %%'",
                        (database,),
                    )
                try:
                    with anyio.fail_after(30):
                        code = await worker.wait()
                finally:
                    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                        admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
    stderr = err.read_text()
    assert code == 4, stderr
    assert "Traceback" not in stderr
    line = next(line for line in stderr.splitlines() if "journal unavailable" in line)
    held = set(sandbox.catfee.charge_counts())
    assert held and all(str(cid) in line for cid in held)  # it names every order it held
    with psycopg.connect(pg_dsn) as check:
        states = check.execute("SELECT state FROM energy_async.entries").fetchall()
    assert sorted(state for (state,) in states) != [] and ("SETTLED",) not in states
