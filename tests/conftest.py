"""Shared fixtures. Markers: slow, gpu, browser, postgres, mmseg (see pyproject.toml).

PostgreSQL: scripts/test.sh starts a throw-away server on loopback and exports
REDWEB_TEST_POSTGRES_URL. Tests marked ``postgres`` fail loudly (not skip) when CI=true and the
server is missing, so a broken test command cannot pass silently.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("REDWEB_TEST_POSTGRES_URL")


def _require_postgres() -> str:
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("REDWEB_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh")
        pytest.skip("no PostgreSQL: run the tests with scripts/test.sh")
    return POSTGRES_URL


@pytest.fixture
def postgres_url() -> str:
    """A fresh, empty PostgreSQL database on the test server (dropped afterwards)."""
    import sqlalchemy as sa

    base = _require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path: Path) -> str:
    """Run a test against both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(catalog_url):
    from tasks.catalog.catalog import Catalog

    with Catalog(catalog_url) as cat:
        yield cat


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("REDWEB_DATA_ROOT", str(root))
    monkeypatch.delenv("REDWEB_DATABASE_URL", raising=False)
    return root


@pytest.fixture(scope="session")
def prefect_test_server():
    """One temporary Prefect API for the whole session (flows otherwise start one per run)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
