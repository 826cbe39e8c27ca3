from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp runs on asyncio only.
    return "asyncio"


from tests.pg import pg_dsn  # noqa: E402,F401  (the per-test PostgreSQL database fixture)
