"""A fresh PostgreSQL database per test, from the server named by ENERGY_ASYNC_TEST_PG_DSN.

`.ci/run` starts a throwaway server and sets the variable; point it at your own server to run
these tests locally (the role needs CREATEDB). Without it the PostgreSQL tests skip, except in
CI (``CI=true``), where a missing server or driver fails them: none is skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

DSN_VARIABLE = "ENERGY_ASYNC_TEST_PG_DSN"


def require_driver() -> None:
    """For a test module that needs psycopg: skip it without the extra, fail in CI."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(
            "psycopg is not installed: pip install -e '.[test,postgres]'",
            allow_module_level=True,
        )


def server_dsn() -> str:
    """The test server's DSN, or skip (fail in CI) when there is none or no driver."""
    dsn = os.environ.get(DSN_VARIABLE)
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not dsn:
        if in_ci:
            pytest.fail(f"{DSN_VARIABLE} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"set {DSN_VARIABLE} to run the PostgreSQL journal tests")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if in_ci:
            pytest.fail("psycopg is not installed in CI: install the 'postgres' extra")
        pytest.skip("psycopg is not installed: pip install -e '.[test,postgres]'")
    return dsn


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN to a new, empty database that is dropped after the test."""
    import psycopg

    server = server_dsn()
    name = f"ea_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
