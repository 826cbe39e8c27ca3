from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp runs on asyncio only.
    return "asyncio"


from tests.pg import pg_dsn  # noqa: E402,F401  (the per-test PostgreSQL database fixture)


@pytest.fixture(autouse=True)
def fresh_order_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own process-default order ledger: the sandbox's seeded addresses
    repeat from test to test, and one test's orders must not touch the next one's targets."""
    from energy_async import ledger

    monkeypatch.setattr(ledger, "DEFAULT_LEDGER", ledger.OrderLedger())
