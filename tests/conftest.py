"""Shared fixtures: real HTTP servers on 127.0.0.1, real SQLite files, real PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from loguru import logger

PG_HOST, PG_PORT = "127.0.0.1", 5432


@pytest.fixture
def anyio_backend() -> str:
    # aiohttp runs on asyncio only.
    return "asyncio"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], object]]:
    """Start aiohttp apps on 127.0.0.1 ephemeral ports; all are closed after the test."""
    servers: list[TestServer] = []

    async def start(app: web.Application) -> str:
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture(scope="session", autouse=True)
def _typer_command_built_once() -> Iterator[None]:
    """Typer's test runner builds the click command from the app on every ``invoke``
    (60 ms for podium's 26 commands, most of it evaluating annotations); a process of the
    real CLI builds it once, so the tests do too."""
    import typer.testing

    build = typer.testing._get_command
    built: dict[int, Any] = {}

    def once(app: Any) -> Any:
        if id(app) not in built:
            built[id(app)] = (app, build(app))
        return built[id(app)][1]

    typer.testing._get_command = once  # type: ignore[assignment]
    yield
    typer.testing._get_command = build  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _podium_logging_reset() -> Iterator[None]:
    """A command run in-process (CliRunner) configures podium's log handler onto a
    stream that is closed when the command returns; no later test may write to it."""
    yield
    from podium.orchestrator._logging import remove_logging

    remove_logging()
    logger.disable("podium")


@contextmanager
def podium_logging() -> Iterator[None]:
    """podium's log records for the duration: a library's are off until a host enables
    them, and a test that looks for (or for the absence of) a log line needs them on."""
    logger.enable("podium")
    try:
        yield
    finally:
        logger.disable("podium")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'podium-test.db'}"


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def _start_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The base URL of the local PostgreSQL; required under CI=true, else skipped if absent."""
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            _start_postgres()
            if not _pg_reachable():
                pytest.fail("CI=true but PostgreSQL on 127.0.0.1:5432 could not be started")
        else:
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (set CI=true to require it)")
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards, so tests never see each other's tables."""
    import psycopg2  # type: ignore[import-untyped]

    name = f"podium_test_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(postgres_server)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
