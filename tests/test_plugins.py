"""Connector plugins: discovered by entry point after a real ``pip install``.

The example package in ``examples/podium-example-connector`` is installed into the
running environment and used by a pipeline purely through its entry point; a broken
plugin costs one clear line and nothing else; ``podium connectors new`` writes a package
that installs, passes its own test and shows up in ``podium connectors``.
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from podium.connectors import Connector, connector_class, describe_kinds
from podium.orchestrator import load_config, open_database, run_pipeline
from podium.pipeline import PluginError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "podium-example-connector"
EXAMPLE_DIST = "podium-example-connector"
PODIUM = Path(sys.executable).with_name("podium")


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        check=True,
        timeout=300,
    )


def builds_without_isolation() -> bool:
    """Whether this environment can build the example itself: setuptools >= 64 (its
    ``build-system.requires``), plus ``wheel`` for a setuptools older than 70.1, which
    does not build wheels on its own. Then pip need not download build requirements."""
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        return False
    release = tuple(int(n) for n in re.findall(r"\d+", found)[:2])
    if release < (64,):
        return False
    return release >= (70, 1) or importlib.util.find_spec("wheel") is not None


def pip_install(package: Path) -> None:
    """A regular, non-editable install of ``package`` from a fresh copy of it.

    Force-reinstalled, so an edit without a version bump is never served stale; built
    from a copy, so the checkout gets no ``build/`` or ``*.egg-info`` (nor reuses stale
    ones); without build isolation when the environment has the build tools, so pip
    need not download them each run."""
    with tempfile.TemporaryDirectory(prefix="podium-build-") as tmp:
        source = Path(tmp) / package.name
        shutil.copytree(
            package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        install = ("install", "--no-deps", "--force-reinstall", str(source))
        if builds_without_isolation():
            try:
                pip(*install, "--no-build-isolation")
            except subprocess.CalledProcessError:
                pip(*install)  # the local build tools fell short: let pip fetch its own
        else:
            pip(*install)
    importlib.invalidate_caches()


def pip_uninstall(dist: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", dist],
        capture_output=True,
        timeout=120,
    )
    importlib.invalidate_caches()


def installed(dist: str) -> bool:
    importlib.invalidate_caches()
    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True


@contextmanager
def shared_install(package: Path, dist: str) -> Iterator[None]:
    """``package`` installed while any test session in this environment uses it.

    Several sessions may share the environment (the suite run twice at once): each
    holds a shared lock on a file in it while it uses the package; a session that finds
    no other user installs it afresh, and the last one out uninstalls it."""
    lock = (Path(sys.prefix) / f".{dist}.lock").open("a")
    try:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # In use, or being installed or removed by another session: wait that out.
                fcntl.flock(lock, fcntl.LOCK_SH)
                if installed(dist):
                    break
                fcntl.flock(lock, fcntl.LOCK_UN)
                time.sleep(0.1)
            else:
                pip_install(package)
                fcntl.flock(lock, fcntl.LOCK_SH)
                break
        yield
    finally:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # another session still uses it; the last one out uninstalls
        else:
            pip_uninstall(dist)
        lock.close()


@pytest.fixture(scope="session")
def example_plugin() -> Iterator[str]:
    """The example plugin, installed into this environment the way a user would (a
    regular pip install, not a path hack) for this session, and removed after it."""
    with shared_install(EXAMPLE, EXAMPLE_DIST):
        yield "ndjson"


def ndjson_app() -> web.Application:
    """NDJSON pages of 3 records; the next page's token is in ``X-Next-Page-Token``."""
    records = [{"id": i, "kind": "event"} for i in range(8)]
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        start = int(request.query.get("page_token", "0"))
        page = records[start : start + 3]
        body = "\n".join(f'{{"id": {r["id"]}, "kind": "{r["kind"]}"}}' for r in page) + "\n"
        headers = {"X-Next-Page-Token": str(start + 3)} if start + 3 < len(records) else {}
        return web.Response(body=body, content_type="application/x-ndjson", headers=headers)

    app.router.add_get("/events", handler)
    return app


def write_config(path: Path, base: str, db_url: str, extra: str = "") -> Path:
    path.write_text(
        f"""
[database]
url = "{db_url}"

[connectors.events]
kind = "ndjson"
base_url = "{base}"

[pipelines.good]
[[pipelines.good.stages]]
name = "events"
kind = "fetch"
connector = "events"
path = "/events"

[[pipelines.good.stages]]
name = "save"
kind = "store"
table = "events"
key = ["id"]
{extra}
""",
        encoding="utf-8",
    )
    return path


async def run_good(config_path: Path, db_url: str) -> list[int]:
    config = load_config(config_path, env={})
    pipeline = config.pipeline("good")
    async with open_database(db_url) as database:
        result = await run_pipeline(
            pipeline, connectors=config.connectors_for(pipeline), database=database
        )
    assert result.status == "ok", result.run.error
    with sqlite3.connect(Path(db_url.removeprefix("sqlite:///"))) as db:
        return [r[0] for r in db.execute("select id from events order by id")]


@pytest.mark.anyio
async def test_the_installed_example_runs_a_pipeline_by_entry_point(
    example_plugin: str, serve: Callable[..., Any], sqlite_url: str, tmp_path: Path
) -> None:
    base = await serve(ndjson_app())
    config_path = write_config(tmp_path / "config.toml", base, sqlite_url)
    connector = load_config(config_path, env={}).connectors["events"]
    assert isinstance(connector, Connector)
    assert type(connector).__module__ == "podium_example_connector"
    # Imported from site-packages by the entry point, not from the repository checkout.
    assert "site-packages" in sys.modules["podium_example_connector"].__file__  # type: ignore[operator]
    assert await run_good(config_path, sqlite_url) == list(range(8))


@pytest.fixture
def broken_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed distribution whose entry point's module fails to import."""
    site = tmp_path / "site"
    dist = site / "podium_broken_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: podium-broken-plugin\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[podium.connectors]\nbroken = podium_broken_plugin:Nope\n"
    )
    (site / "podium_broken_plugin.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(site))
    return site


BROKEN_CONNECTORS = """
[connectors.bad_import]
kind = "broken"

[connectors.bad_config]
kind = "ndjson"
page_token_header = 5

[pipelines.uses_broken]
[[pipelines.uses_broken.stages]]
name = "x"
kind = "fetch"
connector = "bad_import"
"""


@pytest.mark.anyio
async def test_a_broken_plugin_is_one_line_and_other_pipelines_run(
    example_plugin: str,
    broken_plugin: Path,
    serve: Callable[..., Any],
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    base = await serve(ndjson_app())
    config_path = write_config(tmp_path / "config.toml", base, sqlite_url, BROKEN_CONNECTORS)
    config = load_config(config_path, env={})
    assert [str(p) for p in config.problems()] == [
        f"{config_path}: connectors.bad_import.kind: connector plugin 'broken' "
        "(podium_broken_plugin:Nope) failed to load: ModuleNotFoundError: "
        "No module named 'a_module_that_is_not_installed'",
        f"{config_path}: connectors.bad_config.page_token_header: Input should be a valid string",
    ]
    with pytest.raises(PluginError, match="failed to load"):
        config.connectors_for(config.pipeline("uses_broken"))
    assert await run_good(config_path, sqlite_url) == list(range(8))

    # The command line says the same, one line per problem, without a traceback.
    env = {**os.environ, "PYTHONPATH": str(broken_plugin), "COLUMNS": "400"}
    validate = await anyio.run_process(
        [str(PODIUM), "validate", "-c", str(config_path)], env=env, check=False
    )
    assert validate.returncode == 2
    lines = validate.stderr.decode().strip().splitlines()
    assert len(lines) == 2
    assert "connector plugin 'broken' (podium_broken_plugin:Nope) failed to load" in lines[0]
    listing = await anyio.run_process([str(PODIUM), "connectors"], env=env, check=False)
    assert listing.returncode == 0
    broken_row = next(line for line in listing.stdout.decode().splitlines() if "broken" in line)
    assert "podium-broken-plugin" in broken_row
    assert "ModuleNotFoundError" in broken_row


def test_discovery_order_and_unknown_kinds(example_plugin: str) -> None:
    from podium.connectors import HttpConnector

    assert connector_class("http") is HttpConnector  # built-ins first
    by_entry_point = connector_class("ndjson")
    by_path = connector_class("podium_example_connector:NdjsonConnector")
    assert by_entry_point is by_path
    with pytest.raises(PluginError) as info:
        connector_class("graphql")
    assert str(info.value).startswith("unknown connector kind 'graphql' (known: ")
    assert "http" in str(info.value)
    assert "ndjson" in str(info.value)
    with pytest.raises(PluginError, match="is not a podium Connector subclass"):
        connector_class("pathlib:Path")


def test_podium_connectors_lists_kind_package_version_and_fields(example_plugin: str) -> None:
    info = {i.kind: i for i in describe_kinds()}
    assert info["ndjson"].package == "podium-example-connector"
    assert info["ndjson"].version == "0.1.0"
    assert info["ndjson"].fields == (
        "page_token_header = 'X-Next-Page-Token'",
        "page_token_param = 'page_token'",
    )
    listing = subprocess.run(
        [str(PODIUM), "connectors"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "ndjson" in line)
    for text in ("podium-example-connector", "0.1.0", "page_token_header"):
        assert text in row


@pytest.fixture
def demo_x_uninstalled() -> Iterator[None]:
    yield
    # Leave the environment as it was, whatever the test did.
    subprocess.run(
        [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "podium-demo-x"],
        capture_output=True,
        timeout=120,
    )


@pytest.mark.timeout(400)
def test_a_new_skeleton_installs_passes_its_test_and_is_listed(
    tmp_path: Path, demo_x_uninstalled: None
) -> None:
    created = subprocess.run(
        [str(PODIUM), "connectors", "new", "demo-x", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    package = tmp_path / "podium-demo-x"
    assert sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file()) == [
        "README.md",
        "podium_demo_x/__init__.py",
        "pyproject.toml",
        "tests/cassettes/api.yaml",
        "tests/test_connector.py",
    ]
    again = subprocess.run(
        [str(PODIUM), "connectors", "new", "demo-x", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2
    assert "already exists" in again.stderr

    pip_install(package)
    tested = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "2 passed" in tested.stdout
    listing = subprocess.run(
        [str(PODIUM), "connectors"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=60,
    )
    row = next(line for line in listing.stdout.splitlines() if "demo-x" in line)
    assert "podium-demo-x" in row
    assert "api_version = 'v1'" in row


def write_probe(root: Path, kind: str, answer: str) -> tuple[Path, str]:
    """A one-module plugin package for ``kind`` whose class says ``answer``; returns its
    directory and distribution name."""
    dist = f"podium-{kind}".replace("_", "-")
    module_name = dist.replace("-", "_")
    package = root / dist
    module = package / module_name
    module.mkdir(parents=True, exist_ok=True)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist}"\nversion = "1.0"\n\n'
        '[project.entry-points."podium.connectors"]\n'
        f'{kind} = "{module_name}:Probe"\n\n'
        f'[tool.setuptools]\npackages = ["{module_name}"]\n',
        encoding="utf-8",
    )
    (module / "__init__.py").write_text(
        "from podium import Connector\n\n\n"
        f"class Probe(Connector):\n    kind = {kind!r}\n    ANSWER = {answer!r}\n",
        encoding="utf-8",
    )
    return package, dist


def podium_connectors() -> str:
    listing = subprocess.run(
        [str(PODIUM), "connectors"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
        timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    return listing.stdout


@pytest.mark.timeout(400)
def test_an_installed_plugin_is_never_stale_and_is_removed_afterwards(tmp_path: Path) -> None:
    """What ``example_plugin`` relies on: an edit without a version bump is installed
    anew; a session leaving while another still uses the package leaves it installed;
    the last one out uninstalls it, so the environment does not keep listing its kind."""
    kind = f"probe_{uuid.uuid4().hex[:8]}"  # its own, should the suite run twice at once
    package, dist = write_probe(tmp_path, kind, "first")
    try:
        with shared_install(package, dist):
            assert kind in podium_connectors()
            with shared_install(package, dist):  # a second session, at the same time
                assert installed(dist)
            assert installed(dist)  # the first session still uses it

            write_probe(tmp_path, kind, "second")  # same version 1.0
            pip_install(package)
            answer = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    f"from podium.connectors import connector_class; "
                    f"print(connector_class({kind!r}).ANSWER)",
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert answer.stdout.strip() == "second", answer.stderr
        assert not installed(dist)
        assert kind not in podium_connectors()
    finally:
        pip_uninstall(dist)
        (Path(sys.prefix) / f".{dist}.lock").unlink(missing_ok=True)
