"""Record and replay: ``podium run P --record DIR`` writes every exchange into cassettes
(vcrpy's YAML format, one per connector, secrets masked); ``--replay DIR`` runs the whole
pipeline from them with no socket, storing exactly the recorded rows.

The demo tests run the command line as subprocesses against the bundled demo API (its
values change with time, so only a replay of the recording can reproduce them); the
replay runs under an audit hook that records every socket it would open or connect.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

import podium
from podium.connectors import ConnectorConfig, HttpConnector, RetryPolicy
from podium.orchestrator import run
from podium.orchestrator.http import (
    AiohttpTransport,
    PlaybackTransport,
    RecordingTransport,
    cassette_path,
    play_from,
    record_to,
)
from podium.orchestrator.http._cassette import (
    Interaction,
    read_cassette,
    response_body,
    write_cassette,
)
from podium.pipeline import CassetteError, Fetch, Pipeline, Store

from .servers import flaky_app
from .test_auth_cookie import USERS, LoginServer, login_app, two_users_pipeline, user_connector
from .test_auth_oauth2 import CLIENT_SECRET, TokenServer, oauth_app
from .test_auth_oauth2 import connector as oauth_connector
from .test_auth_oauth2 import pipeline as oauth_pipeline

ROOT = Path(__file__).resolve().parent.parent
PODIUM = Path(sys.executable).with_name("podium")
DEMO_SECRETS = ("demo-token", "demo-key")

# Runs a command under an audit hook that notes every socket opened for the network (the
# asyncio loop's self-pipe is an AF_UNIX socketpair: it reaches nothing), every connect
# and every name lookup, and writes them to $AUDIT_OUT when the command ends.
AUDITED = """\
import os, runpy, socket, sys

seen = []

def audit(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        seen.append(f"{event} {args[1:2] if event == 'socket.connect' else args[:2]!r}")
    elif event == "socket.__new__" and args[1] != socket.AF_UNIX:
        seen.append(f"socket.__new__ family={args[1]!r}")

sys.addaudithook(audit)
try:
    sys.argv = sys.argv[1:]
    if sys.argv[0] == "-m":
        sys.argv = sys.argv[1:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(os.environ["AUDIT_OUT"], "w") as out:
        out.write("\\n".join(seen))
"""


@dataclass
class Recording:
    directory: Path
    database: Path
    url: str  # the demo API's address while it was recorded (it is gone now)


def demo_env(url: str, database: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "DEMO_"))}
    # The demo's credentials come from the environment here, as `${VAR:-default}` allows.
    env |= {"DEMO_WEATHER_TOKEN": "demo-token", "DEMO_AIR_KEY": "demo-key"}
    return env | {"PODIUM_DEMO_URL": url, "PODIUM_DATABASE_URL": f"sqlite:///{database}"}


def podium_run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODIUM), "run", "demo", "--config", str(ROOT / "config.toml"), "--json", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def audited_replay(
    directory: Path, url: str, database: Path, tmp: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    driver, out = tmp / "audited.py", tmp / "sockets.txt"
    driver.write_text(AUDITED, encoding="utf-8")
    args = ["run", "demo", "--config", str(ROOT / "config.toml"), "--json"]
    done = subprocess.run(
        [sys.executable, str(driver), "-m", "podium", *args, "--replay", str(directory)],
        capture_output=True,
        text=True,
        env=demo_env(url, database) | {"AUDIT_OUT": str(out)},
        cwd=tmp,
        timeout=120,
    )
    return done, [line for line in out.read_text().splitlines() if line]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The demo pipeline recorded once against the bundled demo API, which then stops."""
    from podium.cli.demo import serve_demo_api

    tmp = tmp_path_factory.mktemp("recorded")
    directory, database = tmp / "cassettes", tmp / "recorded.db"
    with serve_demo_api() as url:
        done = podium_run("--record", str(directory), env=demo_env(url, database), cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return Recording(directory, database, url)


def table(database: Path, name: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        try:
            return list(db.execute(f'select * from "{name}" order by 1'))
        except sqlite3.OperationalError:  # no such table: nothing was stored
            return []


# -- the demo, end to end -----------------------------------------------------------------
def test_a_replay_of_the_demo_stores_the_recorded_rows_and_opens_no_socket(
    recording: Recording, tmp_path: Path
) -> None:
    assert sorted(p.name for p in recording.directory.iterdir()) == [
        "demo_air.yaml",
        "demo_weather.yaml",
    ]
    replayed = tmp_path / "replayed.db"
    done, sockets = audited_replay(recording.directory, recording.url, replayed, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sockets == []
    for name in ("city_conditions", "country_conditions"):
        recorded_rows = table(recording.database, name)
        assert recorded_rows, name
        assert table(replayed, name) == recorded_rows  # observed_at and every value included
    assert len(table(replayed, "city_conditions")) == 40


def test_the_audit_hook_does_see_a_live_run_connect(recording: Recording, tmp_path: Path) -> None:
    """The hook is not vacuous: the same command without --replay tries the network."""
    driver, out = tmp_path / "audited.py", tmp_path / "sockets.txt"
    driver.write_text(AUDITED, encoding="utf-8")
    env = demo_env(recording.url, tmp_path / "live.db") | {"AUDIT_OUT": str(out)}
    subprocess.run(
        [sys.executable, str(driver), "-m", "podium", "run", "demo", "--json",
         "--config", str(ROOT / "config.toml")],
        capture_output=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert any(line.startswith("socket.connect") for line in out.read_text().splitlines())


def test_the_demo_cassettes_hold_no_secret(recording: Recording) -> None:
    texts = {p.name: p.read_text() for p in recording.directory.iterdir()}
    for name, text in texts.items():
        for secret in DEMO_SECRETS:
            assert secret not in text, f"{secret!r} in {name}"
    weather = read_cassette(recording.directory / "demo_weather.yaml")
    air = read_cassette(recording.directory / "demo_air.yaml")
    assert {tuple(i.request["headers"]["Authorization"]) for i in weather} == {("Bearer ***",)}
    assert {tuple(i.request["headers"]["X-Api-Key"]) for i in air} == {("***",)}
    assert len(weather) == 41 and len(air) == 40  # /cities, then one request per city
    assert all(i.response["elapsed"] > 0 for i in weather + air)  # recorded timings


def test_a_request_the_cassette_lacks_fails_the_run_and_names_it(
    recording: Recording, tmp_path: Path
) -> None:
    directory = tmp_path / "cassettes"
    shutil.copytree(recording.directory, directory)
    path = directory / "demo_air.yaml"
    data = yaml.safe_load(path.read_text())
    missing = f"{recording.url}/air?city=bud"
    data["interactions"] = [i for i in data["interactions"] if i["request"]["uri"] != missing]
    assert len(data["interactions"]) == 39
    path.write_text(yaml.safe_dump(data))
    database = tmp_path / "replayed.db"

    done = podium_run(
        "--replay", str(directory), env=demo_env(recording.url, database), cwd=tmp_path
    )

    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "not in the cassette" in line]
    assert len(lines) == 1, done.stderr
    assert f"GET {missing}: not in the cassette {path}" in lines[0]
    assert "Traceback" not in done.stderr
    assert not [r for r in table(database, "city_conditions") if r[0] == "bud"]
    status, error = _run_row(database)
    assert status == "failed" and f"GET {missing}" in error


def _run_row(database: Path) -> tuple[str, str]:
    with sqlite3.connect(database) as db:
        row = db.execute("select status, error from podium_runs").fetchone()
    return str(row[0]), str(row[1])


def test_the_command_line_refuses_a_missing_cassette_and_both_flags(tmp_path: Path) -> None:
    env = demo_env("http://127.0.0.1:9", tmp_path / "x.db")
    missing = podium_run("--replay", str(tmp_path / "nowhere"), env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "no such cassette directory" in missing.stderr
    (tmp_path / "half").mkdir()
    half = podium_run("--replay", str(tmp_path / "half"), env=env, cwd=tmp_path)
    assert half.returncode == 1
    assert f"{tmp_path / 'half' / 'demo_air.yaml'}: no such cassette" in half.stderr
    both = podium_run("--replay", "a", "--record", "b", env=env, cwd=tmp_path)
    assert both.returncode == 2
    assert "--record and --replay exclude each other" in both.stderr


# -- masking: tokens, keys, cookies ---------------------------------------------------------
def read_all(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.iterdir()))


def stored(url: str, name: str) -> list[tuple[Any, ...]]:
    return table(Path(url.removeprefix("sqlite:///")), name)


@pytest.mark.anyio
async def test_an_obtained_oauth2_token_and_the_client_secret_are_masked(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    state = TokenServer()
    base = await serve(oauth_app(state))
    api = oauth_connector(base)
    directory = tmp_path / "cassettes"
    recorded_db, replayed_db = f"sqlite:///{tmp_path}/r.db", f"sqlite:///{tmp_path}/p.db"

    result = await run(
        oauth_pipeline(5), [api], database=recorded_db, transport=record_to(directory, {"api": api})
    )
    assert result.status == "ok", result.run.error
    text = read_all(directory)
    assert state.issued and state.issued[0] not in text
    assert CLIENT_SECRET not in text
    assert "access_token: ***" in text or '"access_token": "***"' in text
    assert "client_secret=***" in text

    token_requests = state.token_requests
    replayed = await run(
        oauth_pipeline(5), [api], database=replayed_db, transport=play_from(directory, {"api": api})
    )
    assert replayed.status == "ok", replayed.run.error
    assert state.token_requests == token_requests and state.data_requests == 5  # not asked
    assert stored(replayed_db, "data") == stored(recorded_db, "data")


@pytest.mark.anyio
async def test_login_passwords_and_session_cookies_are_masked(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    state = LoginServer()
    base = await serve(login_app(state))
    users = [user_connector(f"as_{u}", base, u, p) for u, p in USERS.items()]
    by_name = {c.name: c for c in users}
    directory = tmp_path / "cassettes"
    recorded_db, replayed_db = f"sqlite:///{tmp_path}/r.db", f"sqlite:///{tmp_path}/p.db"

    result = await run(
        two_users_pipeline(3), users, database=recorded_db, transport=record_to(directory, by_name)
    )
    assert result.status == "ok", result.run.error
    text = read_all(directory)
    for secret in [*USERS.values(), *state.sessions]:
        assert secret not in text
    assert "sid=***" in text

    replayed = await run(
        two_users_pipeline(3), users, database=replayed_db, transport=play_from(directory, by_name)
    )
    assert replayed.status == "ok", replayed.run.error
    assert sum(state.logins.values()) == 2  # the replay logged nobody in
    for name in ("alice_rows", "bob_rows"):
        assert stored(replayed_db, name) == stored(recorded_db, name)


def keyed_connector(base: str, name: str = "keyed") -> HttpConnector:
    auth = {"type": "api_key", "name": "appid", "value": "k3y-in-query-55aa", "in": "query"}
    return HttpConnector(name, ConnectorConfig(kind="http", base_url=base, auth=auth))


def one_fetch(path: str, connector: str = "keyed") -> Pipeline:
    return Pipeline(
        name="one",
        stages=[
            Fetch(name="get", connector=connector, path=path, records="items"),
            Store(name="save", table="items", key=["id"]),
        ],
    )


@pytest.mark.anyio
async def test_a_missing_request_is_named_without_its_secret(tmp_path: Path) -> None:
    path = tmp_path / "keyed.yaml"
    write_cassette(path, [])
    api = keyed_connector("https://api.test")
    result = await run(
        one_fetch("/items"), [api], database=f"sqlite:///{tmp_path}/x.db",
        transport=PlaybackTransport(path),
    )  # fmt: skip
    assert result.status == "failed"
    assert result.run.error == (
        f"GET https://api.test/items?appid=***: not in the cassette {path}; "
        "record it again with --record"
    )
    assert result.run.requests == 1 and result.run.stored == 0


@pytest.mark.anyio
async def test_a_key_in_the_query_is_masked_and_still_matches(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    async def items(request: web.Request) -> web.Response:
        assert request.query["appid"] == "k3y-in-query-55aa"
        return web.json_response({"items": [{"id": 1, "q": request.query["q"]}]})

    app = web.Application()
    app.router.add_get("/items", items)
    base = await serve(app)
    path = tmp_path / "keyed.yaml"
    recording = RecordingTransport(AiohttpTransport(keyed_connector(base).config), path)
    result = await run(
        one_fetch("/items?q=a%20b"), [keyed_connector(base)],
        database=f"sqlite:///{tmp_path}/r.db", transport=recording,
    )  # fmt: skip
    assert result.status == "ok", result.run.error
    text = path.read_text()
    assert "k3y-in-query-55aa" not in text
    assert "appid=***" in text
    # Another key in the replaying run: masked too, so the request still matches.
    other = HttpConnector(
        "keyed",
        ConnectorConfig(
            kind="http",
            base_url=base,
            auth={"type": "api_key", "name": "appid", "value": "another-key", "in": "query"},
        ),
    )
    replayed = await run(
        one_fetch("/items?q=a%20b"), [other], database=f"sqlite:///{tmp_path}/p.db",
        transport=PlaybackTransport(path),
    )  # fmt: skip
    assert replayed.status == "ok", replayed.run.error
    assert stored(f"sqlite:///{tmp_path}/p.db", "items") == [(1, "a b")]


def test_query_parameters_named_as_data_are_not_masked(tmp_path: Path) -> None:
    """Exact credential names only: ``author`` or ``keywords`` stay, so requests that
    differ there stay different (the log redactor's substring rule would mask them)."""
    from podium.orchestrator import Redactor
    from podium.orchestrator.http._masking import kept_request

    request = podium.Request(
        "GET", "https://api.test/books", {"author": "tolkien", "keywords": "ring", "token": "t0k"}
    )
    kept = kept_request(request, Redactor())
    assert kept["uri"] == "https://api.test/books?author=tolkien&keywords=ring&token=***"


@pytest.mark.anyio
async def test_recording_warns_when_masking_makes_requests_alike(tmp_path: Path) -> None:
    from loguru import logger

    from podium.testing import MockTransport, reply

    from .conftest import podium_logging

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip()), level="WARNING", format="{message}")
    recorder = RecordingTransport(MockTransport(lambda r: reply(json={})), tmp_path / "a.yaml")
    with podium_logging():
        async with recorder:
            for value in ("first", "second"):
                await recorder.send(podium.Request("GET", "https://x.test/p", {"token": value}))
    logger.remove(sink)
    assert lines == [
        f"{tmp_path / 'a.yaml'}: 2 requests differ only in masked values (e.g. GET "
        "https://x.test/p?token=***); a replay answers them in the order they were recorded"
    ]
    assert "first" not in (tmp_path / "a.yaml").read_text()


# -- replays in order, bodies of every kind ----------------------------------------------
@pytest.mark.anyio
async def test_repeated_identical_requests_replay_in_recorded_order(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    app, seen = flaky_app(failures=1)
    base = await serve(app)
    api = HttpConnector(
        "api",
        ConnectorConfig(kind="http", base_url=base, retry=RetryPolicy(attempts=3, backoff=0.01)),
    )
    pipeline = one_fetch("/flaky/500/1", connector="api")
    directory = tmp_path / "cassettes"
    recorded = await run(
        pipeline, [api], database=f"sqlite:///{tmp_path}/r.db",
        transport=record_to(directory, {"api": api}),
    )  # fmt: skip
    assert (recorded.status, recorded.run.retries) == ("ok", 1), recorded.run.error
    kept = read_cassette(cassette_path(directory, "api"))
    assert [i.response["status"]["code"] for i in kept] == [500, 200]
    assert kept[0].request["uri"] == kept[1].request["uri"]

    player = PlaybackTransport(cassette_path(directory, "api"))
    replayed = await run(pipeline, [api], database=f"sqlite:///{tmp_path}/p.db", transport=player)
    assert (replayed.status, replayed.run.retries) == ("ok", 1), replayed.run.error
    assert seen.requests == 2  # both from the recording; the replay asked the server nothing
    assert player.unplayed == 0

    # A third identical request finds both answers played (a new run would start over).
    with pytest.raises(CassetteError, match=r"answers it 2 time\(s\), all played already"):
        await player.send(podium.Request("GET", f"{base}/flaky/500/1"))


@pytest.mark.anyio
async def test_compressed_and_binary_bodies_replay_byte_for_byte(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    blob = bytes(range(256)) * 4  # not UTF-8

    async def gzipped(request: web.Request) -> web.Response:
        items = [{"id": n, "text": "é" * 50} for n in range(20)]
        response = web.json_response({"items": items}, dumps=orjson_text)
        response.enable_compression(web.ContentCoding.gzip)
        return response

    async def binary(request: web.Request) -> web.Response:
        return web.Response(body=blob, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/gzipped", gzipped)
    app.router.add_get("/binary", binary)
    base = await serve(app)
    config = ConnectorConfig(kind="http", base_url=base)
    path = tmp_path / "api.yaml"
    requests = [podium.Request("GET", f"{base}/gzipped"), podium.Request("GET", f"{base}/binary")]
    async with RecordingTransport(AiohttpTransport(config), path) as recorder:
        live = [await recorder.send(r) for r in requests]
    assert live[0].headers["Content-Encoding"] == "gzip"
    assert live[1].body == blob
    text = path.read_text()
    assert "!!binary" in text  # the binary body, as base64
    assert "é" * 50 in text  # the decoded JSON, as readable text

    async with PlaybackTransport(path) as player:
        replayed = [await player.send(r) for r in requests]
    for was, now in zip(live, replayed, strict=True):
        assert (now.status, now.body, now.url) == (was.status, was.body, was.url)
        assert list(now.headers.items()) == list(was.headers.items())
        assert now.elapsed == round(was.elapsed, 6)


@settings(max_examples=60, deadline=None)
@given(body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_a_body_survives_the_cassette_file_exactly(body: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": (
            body.decode() if _utf8(body) else body)}}  # fmt: skip
        write_cassette(path, [Interaction({"method": "GET", "uri": "https://x.test/"}, response)])
        assert response_body(read_cassette(path)[0].response) == body


def orjson_text(value: Any) -> str:
    return orjson.dumps(value).decode()  # UTF-8 as it is, no \u escapes


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def test_a_broken_cassette_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text(
        "interactions:\n- request: {method: GET, uri: 'https://x.test/'}\n"
        "  response: {status: {message: OK}}\nversion: 1\n"
    )
    with pytest.raises(CassetteError) as caught:
        read_cassette(path)
    assert str(caught.value) == (
        f"{path}: interactions[0].response.status.code: expected an HTTP status (100-599)"
    )
    path.write_text("interactions: [\n")
    with pytest.raises(CassetteError, match=r"\(line \d+\): not a YAML cassette"):
        read_cassette(path)


@pytest.mark.anyio
async def test_a_recorded_certificate_counts_its_days_left_from_now(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    expires = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    response = {"status": {"code": 200}, "certificate": {"expires_at": expires}}
    path = tmp_path / "tls.yaml"
    write_cassette(path, [Interaction({"method": "GET", "uri": "https://x.test/"}, response)])
    async with PlaybackTransport(path) as player:
        answer = await player.send(podium.Request("GET", "https://x.test/"))
    assert answer.certificate is not None
    assert 9.99 < answer.certificate["expires_in_days"] <= 10
    assert (answer.body, answer.elapsed) == (b"", 0.0)  # a bare hand-written interaction


# -- vcrpy reads podium's cassettes, podium plays vcrpy's --------------------------------------
@pytest.mark.anyio
async def test_vcrpy_plays_back_a_podium_cassette(recording: Recording) -> None:
    import aiohttp
    import vcr

    path = recording.directory / "demo_weather.yaml"
    kept = read_cassette(path)
    with vcr.use_cassette(str(path), record_mode="none"):
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{recording.url}/cities")
            body = await response.read()
    assert body == response_body(kept[0].response)


@pytest.mark.anyio
async def test_podium_plays_a_cassette_vcrpy_recorded(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    import aiohttp
    import vcr

    async def items(request: web.Request) -> web.Response:
        data = await request.json()
        return web.json_response({"items": [{"id": 7, "asked": data["ask"]}]})

    app = web.Application()
    app.router.add_post("/search", items)
    base = await serve(app)
    path = tmp_path / "api.yaml"
    with vcr.use_cassette(str(path), record_mode="all"):
        async with aiohttp.ClientSession() as session:
            await (await session.post(f"{base}/search", json={"ask": "x"})).read()

    api = HttpConnector("api", ConnectorConfig(kind="http", base_url=base))
    pipeline = Pipeline(
        name="search",
        stages=[
            Fetch(name="get", connector="api", path="/search", method="POST",
                  body={"ask": "x"}, records="items"),
            Store(name="save", table="items", key=["id"]),
        ],
    )  # fmt: skip
    url = f"sqlite:///{tmp_path}/p.db"
    result = await run(pipeline, [api], database=url, transport=PlaybackTransport(path))
    assert result.status == "ok", result.run.error
    assert stored(url, "items") == [(7, "x")]


# -- the connector scaffold's test runs offline from its cassette ---------------------------
def test_the_scaffolds_test_runs_from_its_cassette_with_no_socket(tmp_path: Path) -> None:
    from podium.cli._scaffold import write_skeleton

    package = write_skeleton("tape-x", tmp_path)
    assert (package / "tests" / "cassettes" / "api.yaml").is_file()
    driver, out = tmp_path / "audited.py", tmp_path / "sockets.txt"
    driver.write_text(AUDITED, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(driver), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_connector.py::test_fetches_and_stores"],
        capture_output=True, text=True, cwd=package, timeout=120,
        env={**os.environ, "AUDIT_OUT": str(out), "PYTHONPATH": str(package)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert [line for line in out.read_text().splitlines() if line] == []


def test_a_record_path_that_cannot_hold_cassettes_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from podium.cli import app

    from .config_helpers import config

    path = tmp_path / "config.toml"
    path.write_text(config(tmp_path), encoding="utf-8")
    taken = tmp_path / "a-file"
    taken.write_text("not a folder", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "p", "--config", str(path), "--record", str(taken)])
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert "--record" in line and "cannot make the cassette directory" in line


@pytest.mark.anyio
async def test_a_replay_needs_no_credential_from_the_environment(
    serve: Callable[..., Any], tmp_path: Path
) -> None:
    """Recorded with the token set; replayed in "CI", where it is not: the config's
    `${REPLAY_TOKEN}` reads as a placeholder, and the cassette answers as before."""
    import anyio
    from aiohttp import web

    async def items(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer s3cret-replay"
        return web.json_response([{"id": 1}, {"id": 2}])

    app = web.Application()
    app.router.add_get("/items", items)
    base = await serve(app)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n'
        f'[connectors.api]\nkind = "http"\nbase_url = "{base}"\n'
        'auth = { type = "bearer", token = "${REPLAY_TOKEN}" }\n'
        '[pipelines.p]\n[[pipelines.p.stages]]\nname = "get"\nkind = "fetch"\n'
        'connector = "api"\npath = "/items"\n'
        '[[pipelines.p.stages]]\nname = "save"\nkind = "store"\ntable = "items"\nkey = ["id"]\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "REPLAY_TOKEN"}
    cassettes = tmp_path / "cassettes"
    command = [str(PODIUM), "run", "p", "--config", str(config)]
    recorded = await anyio.run_process(
        [*command, "--record", str(cassettes)],
        env=env | {"REPLAY_TOKEN": "s3cret-replay"}, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr.decode()
    assert "s3cret-replay" not in (cassettes / "api.yaml").read_text()
    replayed = await anyio.run_process(
        [*command, "--replay", str(cassettes)], env=env, cwd=tmp_path, check=False
    )
    assert replayed.returncode == 0, replayed.stderr.decode()
    unset = await anyio.run_process(command, env=env, cwd=tmp_path, check=False)
    assert unset.returncode == 2 and b"REPLAY_TOKEN is not set" in unset.stderr  # live: needed
