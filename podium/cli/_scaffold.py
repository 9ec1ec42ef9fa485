"""``podium connectors new NAME``: a connector plugin package, ready to edit and install.

The skeleton is a complete package: a pyproject that registers the connector under the
``podium.connectors`` entry-point group, a connector class with its own config model,
and a test that runs it in a pipeline served from a cassette it ships
(``tests/cassettes/api.yaml``, replayed by ``podium.testing.PlaybackTransport``: no socket
opened). ``podium run P --record tests/cassettes`` replaces that cassette with the real
API's exchanges.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from podium.connectors import ENTRY_POINT_GROUP
from podium.pipeline import ConfigError

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")

_PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "The $kind connector for podium"
requires-python = ">=3.11"
dependencies = ["podium"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This line is the whole plugin seam: podium finds the kind "$kind" through it.
[project.entry-points."$group"]
"$kind" = "$package:$cls"

[tool.setuptools]
packages = ["$package"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-ra --strict-markers"
filterwarnings = ["error"]
""")

_MODULE = Template('''\
"""The $kind connector: how podium talks to this API.

A connector does no I/O. podium owns the HTTP session, the limits and the retries; the
connector says how the session is set up, how a fetch becomes requests and how a
response becomes records. Override only what this API does differently.
"""

from __future__ import annotations

from podium import Connector, ConnectorConfig, Fetch, Record, Response


class ${cls}Config(ConnectorConfig):
    """Keys of a ``[connectors.X]`` table with ``kind = "$kind"``, beyond the common ones
    (base_url, headers, auth, timeout, concurrency, retry)."""

    api_version: str = "v1"


class $cls(Connector):
    kind = "$kind"
    Config = ${cls}Config
    config: ${cls}Config

    def session_headers(self) -> dict[str, str]:
        # Sent with every request of this connector's session.
        return {**super().session_headers(), "X-Api-Version": self.config.api_version}

    def records(self, fetch: Fetch, response: Response) -> list[Record]:
        # The default decodes JSON and applies the fetch's ``records`` path; reshape here
        # when the API wraps its records in something a path cannot reach.
        return super().records(fetch, response)
''')

_TEST = Template('''\
"""The connector in a real pipeline, its API served from a cassette: no socket, no server.

tests/cassettes/api.yaml holds exchanges recorded from the API (vcrpy's cassette format,
secrets masked); podium.testing's PlaybackTransport replays them, and a request the
cassette does not hold fails the run. Everything else — auth, pagination, retries, the
store and the run journal — is podium's own, as in production. Record the real API's
exchanges with ``podium run <pipeline> --record tests/cassettes`` (see README.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import podium
from podium.connectors import connector_class
from podium.testing import PlaybackTransport, podium_database, run, stored_rows
from $package import $cls

pytestmark = pytest.mark.anyio
__all__ = ["podium_database"]  # the fixture, used by name below

CASSETTE = Path(__file__).parent / "cassettes" / "api.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # podium runs on asyncio


async def test_fetches_and_stores(podium_database: str) -> None:
    connector = $cls("api", $cls.Config(kind="$kind", base_url="https://api.example.test"))
    pipeline = podium.Pipeline(
        name="smoke",
        stages=[
            podium.Fetch(name="items", connector="api", path="/items", records="items"),
            podium.Store(name="save", table="items", key=["id"]),
        ],
    )
    transport = PlaybackTransport(CASSETTE)
    result = await run(pipeline, [connector], database=podium_database, transport=transport)
    assert result.status == "ok", result.run.error
    assert [r.headers["X-Api-Version"] for r in transport.requests] == ["v1"]
    rows = await stored_rows(podium_database, "items")
    assert [(r["id"], r["name"]) for r in rows] == [(1, "a"), (2, "b")]


def test_registered_by_entry_point() -> None:
    # Passes once the package is installed: pip install -e .
    assert connector_class("$kind") is $cls
''')

_CASSETTE = Template("""\
# Exchanges of the connector "api", replayed by tests/test_connector.py with no socket
# (vcrpy's cassette format; podium masks secrets when it records). Record the real API's:
#   podium run <pipeline> --record tests/cassettes
interactions:
- request:
    body: null
    headers:
      X-Api-Version:
      - v1
    method: GET
    uri: https://api.example.test/items
  response:
    body:
      string: '{"items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}'
    elapsed: 0.05
    headers:
      Content-Type:
      - application/json
    status:
      code: 200
      message: OK
version: 1
""")

_README = Template("""\
# $dist

The `$kind` connector for podium.

    pip install -e '.[test]'
    python -m pytest
    podium connectors          # lists "$kind"

Use it in a config:

    [connectors.example]
    kind = "$kind"
    base_url = "https://api.example.com"
    api_version = "v1"

## Testing offline

`tests/test_connector.py` runs the connector in a pipeline served from
`tests/cassettes/api.yaml`: exchanges recorded from the API (vcrpy's cassette format,
secrets masked), replayed with no socket. To test against your API's real answers,
name the connector `api` in a config with a pipeline that uses it, run it once against
the API with `--record`, and commit the cassette:

    podium run smoke --record tests/cassettes
""")


def write_skeleton(name: str, parent: Path) -> Path:
    """Write the package for connector kind ``name`` into ``parent``; returns its folder."""
    if not _NAME.match(name):
        raise ConfigError(
            f"connector name {name!r}: use lower-case letters, digits, '-' or '_' "
            "(e.g. weather-api)"
        )
    snake = name.replace("-", "_")
    values = {
        "kind": name,
        "dist": f"podium-{name.replace('_', '-')}",
        "package": f"podium_{snake}",
        "cls": "".join(part.capitalize() for part in snake.split("_")) + "Connector",
        "group": ENTRY_POINT_GROUP,
    }
    root = parent / values["dist"]
    if root.exists():
        raise ConfigError(f"{root} already exists; choose another name or --dir")
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"{values['package']}/__init__.py": _MODULE,
        "tests/test_connector.py": _TEST,
        "tests/cassettes/api.yaml": _CASSETTE,
    }
    for relative, template in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.substitute(values), encoding="utf-8")
    return root
