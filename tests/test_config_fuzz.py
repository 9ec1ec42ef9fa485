"""Mutated valid configs never crash the command line: exit 2 with one line, or a real run.

Hypothesis starts from small valid configs, breaks them (keys deleted, misspelt, retyped,
values corrupted, stages duplicated or removed, then raw bytes flipped) and runs
``podium validate`` and ``podium run`` in-process on each. A config that is still valid
really runs, against the bundled demo API on 127.0.0.1 and a SQLite file in a scratch
folder; nothing may leave loopback. Run with ``-s`` to see how many cases ran.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import math
import os
import re
import shutil
import socket
import tempfile
import time
import tomllib
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from podium.cli import app
from podium.cli.demo import serve_demo_api

# --------------------------------------------------------------------------------------
# Seeds: small valid configs. base_url comes from the environment so the text (and so
# every generated case) is the same whatever port the demo API got.
# --------------------------------------------------------------------------------------

URL_VAR, TOKEN_VAR, UNSET_VAR = "PODIUM_FUZZ_URL", "PODIUM_FUZZ_TOKEN", "PODIUM_FUZZ_UNSET"

SEED_TEXTS = {
    "fetch_store": """
[database]
url = "sqlite:///fuzz.db"

[connectors.api]
kind = "http"
base_url = "${PODIUM_FUZZ_URL}"
timeout = 5
connect_timeout = 1
retry = { attempts = 1 }

[pipelines.p]
timeout = 20

[[pipelines.p.stages]]
name = "get"
kind = "fetch"
connector = "api"
path = "/cities"
records = "cities"

[[pipelines.p.stages]]
name = "save"
kind = "store"
table = "cities"
key = ["id"]
""",
    "stages": """
[database]
url = "sqlite:///fuzz.db"

[limits]
concurrency = 8

[connectors.air]
kind = "http"
base_url = "${PODIUM_FUZZ_URL}"
auth = { type = "api_key", name = "X-Api-Key", value = "demo-key" }
timeout = 5
connect_timeout = 1
retry = { attempts = 2, backoff = 0.01 }

[pipelines.q]
description = "cities of two countries, with their air"
params = { country = "DE" }
policy = { max_failed_ratio = 0.5 }
timeout = 20

[[pipelines.q.stages]]
name = "cities"
kind = "fetch"
connector = "air"
path = "/cities"
records = "cities"

[[pipelines.q.stages]]
name = "some"
kind = "transform"
filter = "country == 'DE' || country == 'FR'"
compute = { north = "lat > `50`" }
coerce = { lat = "str" }
rename = { name = "city" }
select = ["id", "city", "country", "lat", "north"]

[[pipelines.q.stages]]
name = "air"
kind = "fetch"
connector = "air"
from = "some"
path = "/air"
params = { city = "{id}", country = "{params.country}" }
records = "data"
carry = { city_id = "id", country = "country" }

[[pipelines.q.stages]]
name = "sane"
kind = "check"
expect = "pm25 >= `0`"
severity = "warn"

[[pipelines.q.stages]]
name = "per_country"
kind = "aggregate"
group_by = ["country"]
metrics = { cities = "count", worst_pm25 = "max:pm25", mean_aqi = "avg:aqi" }

[[pipelines.q.stages]]
name = "all"
kind = "check"
on = "run"
expect = "stages.air.out == stages.some.out"

[[pipelines.q.stages]]
name = "save"
kind = "store"
table = "country_air"
key = ["country"]
batch_size = 10
""",
    "scheduled": """
[database]
url = "sqlite:///fuzz.db"

[scheduler]
host = "127.0.0.1"
port = 8787
grace = "5s"

[connectors.weather]
kind = "http"
base_url = "${PODIUM_FUZZ_URL}"
headers = { Accept = "application/json" }
auth = { type = "bearer", token = "${PODIUM_FUZZ_TOKEN:-demo-token}" }
timeout = 5
connect_timeout = 1
concurrency = 4
retry = { attempts = 2, backoff = 0.01, max_backoff = 0.05 }

[pipelines.w]
timeout = 20
schedule = { interval = "5m", overlap = "skip", catch_up = "skip" }

[[pipelines.w.stages]]
name = "list"
kind = "fetch"
connector = "weather"
path = "/cities"
records = "cities"
paginate = { type = "next_url", path = "next", max_pages = 3 }

[[pipelines.w.stages]]
name = "few"
kind = "transform"
filter = "country == 'NL'"

[[pipelines.w.stages]]
name = "detail"
kind = "fetch"
connector = "weather"
from = "few"
path = "/weather/{id}"
carry = { city_id = "id", city = "name" }

[[pipelines.w.stages]]
name = "shape"
kind = "transform"
compute = { temp = "current.temperature_c" }
select = ["city_id", "city", "temp"]

[[pipelines.w.stages]]
name = "save"
kind = "store"
table = "weather"
key = ["city_id"]
""",
}
SEEDS: dict[str, dict[str, Any]] = {name: tomllib.loads(t) for name, t in SEED_TEXTS.items()}
SEED_PIPELINE = {name: next(iter(doc["pipelines"])) for name, doc in SEEDS.items()}

# --------------------------------------------------------------------------------------
# A small TOML writer: tables and arrays of tables for the top two levels, inline below.
# --------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
_ESCAPES["\r"] = "\\r"


def _str(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _str(key)


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_section(value: Any, prefix: list[str]) -> bool:
    if isinstance(value, dict):
        return len(prefix) < 2
    return (
        isinstance(value, list)
        and len(prefix) <= 2
        and bool(value)
        and all(isinstance(v, dict) for v in value)
    )


def _table(lines: list[str], table: dict[str, Any], prefix: list[str]) -> None:
    for k, v in table.items():
        if not _is_section(v, prefix):
            lines.append(f"{_key(k)} = {_inline(v)}")
    for k, v in table.items():
        if not _is_section(v, prefix):
            continue
        name = [*prefix, _key(k)]
        if isinstance(v, dict):
            lines += ["", f"[{'.'.join(name)}]"]
            _table(lines, v, name)
        else:
            for item in v:
                lines += ["", f"[[{'.'.join(name)}]]"]
                _table(lines, item, name)


def dump_toml(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    _table(lines, doc, [])
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------------------
# Mutations over the parsed document, then over the bytes of the written file.
# --------------------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _nodes(node: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    if path:
        yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nodes(v, (*path, i))


def _get(doc: Any, path: Path_) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


CORRUPT_VALUES: list[Any] = [
    "",
    " ",
    0,
    -1,
    -(10**19),
    10**19,
    2**63,
    1e308,
    -1e308,
    float("inf"),
    float("-inf"),
    float("nan"),
    0.5,
    f"${{{UNSET_VAR}}}",
    "${",
    "${}",
    "}",
    "{params.nope}",
    "{",
    "\x00",
    "a\nb",
    "\r\n",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x7f",
    "[",
    "]",
    "[bold]x[/bold]",
    "[/]",
    "[link=http://127.0.0.1:1]x[/link]",
    "ünïcødé 雪 🎉",
    "\u202e\u200b",
    "'\"\\",
]
SUFFIXES = [
    "x",
    "/",
    "\n",
    "\x00",
    "[",
    "[/red]",
    "é",
    "{",
    "{params.nope}",
    "${",
    f"${{{UNSET_VAR}}}",
]
WEIRD_KEYS = ["", "a\nb", "[red]k[/red]", "ключ", "x y", "\x1b"]


def _typo(draw: st.DrawFn, key: str) -> str:
    how = draw(st.sampled_from(["drop", "double", "swap", "weird"]))
    if how == "weird" or not key:
        return draw(st.sampled_from(WEIRD_KEYS))
    i = draw(st.integers(0, len(key) - 1))
    if how == "drop":
        return key[:i] + key[i + 1 :]
    if how == "double":
        return key[:i] + key[i] + key[i:]
    if len(key) < 2:
        return key + key
    i = min(i, len(key) - 2)
    return key[:i] + key[i + 1] + key[i] + key[i + 2 :]


def _retyped(draw: st.DrawFn, value: Any) -> Any:
    options: dict[str, Callable[[Any], Any]] = {
        "str": lambda v: v if isinstance(v, str) else _inline(v)[:60],
        "int": lambda v: (
            len(v) if isinstance(v, str | list | dict) else int(max(-1e19, min(v, 1e19)))
        ),
        "float": lambda v: float(len(v)) if isinstance(v, str | list | dict) else float(v),
        "bool": bool,
        "list": lambda v: [v],
        "table": lambda v: {"value": v},
    }
    current = {str: "str", bool: "bool", int: "int", float: "float", list: "list", dict: "table"}
    kinds = [k for k in options if k != current.get(type(value))]
    return options[draw(st.sampled_from(kinds))](value)


def _dict_keys(doc: dict[str, Any]) -> list[Path_]:
    return [p for p, _ in _nodes(doc) if isinstance(p[-1], str)]


def m_delete(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    paths = _dict_keys(doc)
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    del _get(doc, path[:-1])[path[-1]]
    return f"delete {path}"


def m_rename(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    paths = _dict_keys(doc)
    if not paths:
        return None
    path = draw(st.sampled_from(paths))
    parent, old = _get(doc, path[:-1]), str(path[-1])
    new = _typo(draw, old)
    # Keep the key's place, so the written file differs only in the name.
    items = [(new if k == old else k, v) for k, v in parent.items() if k != new or k == old]
    parent.clear()
    parent.update(items)
    return f"rename {path} -> {new!r}"


def m_retype(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    paths = [p for p, _ in _nodes(doc)]
    path = draw(st.sampled_from(paths))
    new = _retyped(draw, _get(doc, path))
    _set(doc, path, new)
    return f"retype {path} -> {new!r}"


def m_corrupt(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    leaves = [p for p, v in _nodes(doc) if not isinstance(v, dict | list)]
    if not leaves:
        return None
    path = draw(st.sampled_from(leaves))
    old = _get(doc, path)
    if isinstance(old, str) and old and draw(st.booleans()):
        new: Any = old + draw(st.sampled_from(SUFFIXES))
    else:
        new = draw(st.sampled_from(CORRUPT_VALUES))
    _set(doc, path, new)
    return f"corrupt {path} -> {new!r}"


def m_stage(draw: st.DrawFn, doc: dict[str, Any]) -> str | None:
    lists = [p for p, v in _nodes(doc) if p[-1] == "stages" and isinstance(v, list) and v]
    if not lists:
        return None
    path = draw(st.sampled_from(lists))
    stages = _get(doc, path)
    i = draw(st.integers(0, len(stages) - 1))
    if draw(st.booleans()):
        stages.insert(i + 1, copy.deepcopy(stages[i]))
        return f"duplicate {path}[{i}]"
    del stages[i]
    return f"remove {path}[{i}]"


MUTATIONS = [m_delete, m_rename, m_retype, m_corrupt, m_stage]
BAD_BYTES = [b"\xff", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\x00", b"\x80", b"\r", b"\n["]
# Bytes that keep the file UTF-8 and reach the TOML parser (and past it) more often.
TOML_BYTES = [b'"', b"'", b"[", b"]", b"=", b"\n", b"#", b"{", b"}", b",", b".", b" ", b"\\", b"0"]


def _corrupt_bytes(draw: st.DrawFn, data: bytes) -> tuple[bytes, list[str]]:
    log = []
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            data = draw(st.sampled_from(BAD_BYTES))
            log.append(f"bytes {data!r}")
            continue
        how = draw(st.sampled_from(["flip", "insert", "delete"]))
        pos = draw(st.integers(0, len(data) - 1))
        if how == "flip":
            # Mostly ASCII stays ASCII; one flip in ten may make the file invalid UTF-8.
            mask = draw(
                st.integers(128, 255) if draw(st.integers(0, 9)) == 0 else st.integers(1, 127)
            )
            data = data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]
            log.append(f"flip byte {pos} ^ {mask:#04x}")
        elif how == "insert":
            pick = draw(st.integers(0, 9))  # 1 in 10 raw binary, 1 in 10 bad UTF-8
            extra = draw(
                st.binary(min_size=1, max_size=4)
                if pick == 0
                else st.sampled_from(BAD_BYTES if pick == 1 else TOML_BYTES)
            )
            data = data[:pos] + extra + data[pos:]
            log.append(f"insert {extra!r} at {pos}")
        else:
            n = draw(st.integers(1, 8))
            data = data[:pos] + data[pos + n :]
            log.append(f"delete {n} bytes at {pos}")
    return data, log


class Case:
    """One generated config: the seed it came from, what was done to it, the file's bytes."""

    def __init__(self, seed: str, pipeline: str, data: bytes, log: list[str]) -> None:
        self.seed, self.pipeline, self.data, self.log = seed, pipeline, data, log

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return repr(self.data)

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example
        return f"Case(seed={self.seed!r}, log={self.log!r})\n--- config.toml ---\n{self.text()}"


@st.composite
def broken_configs(draw: st.DrawFn) -> Case:
    seed = draw(st.sampled_from(list(SEEDS)))
    doc = copy.deepcopy(SEEDS[seed])
    log = []
    for _ in range(draw(st.integers(1, 4))):
        done = draw(st.sampled_from(MUTATIONS))(draw, doc)
        if done is not None:
            log.append(done)
    text = dump_toml(doc)
    # (compared as text: a NaN is not equal to itself)
    assert dump_toml(tomllib.loads(text)) == text, "the test's TOML writer wrote something else"
    data = text.encode("utf-8")
    if draw(st.integers(0, 3)) == 0:  # one case in four also gets its bytes damaged
        data, more = _corrupt_bytes(draw, data)
        log += more
    return Case(seed, SEED_PIPELINE[seed], data, log)


ERROR_PREFIX = "podium: error: "
_TRACEBACK_LINES = re.compile(
    r"Traceback \(most recent call last\)"
    r"|^\s*File \"[^\"]*\", line \d+"
    r"|^\s*(\w+\.)*\w*(Error|Exception|Group|Warning)(: |$)",
    re.MULTILINE,
)


def cli_problems(
    result: Result, *, max_error_lines: int = 1, usage_only: bool = False
) -> list[str]:
    """Why ``result`` is not a clean command-line outcome; empty when it is.

    Clean: the command did not raise (a ``SystemExit`` is how Typer exits), exited 0, 1
    or 2 (only 0 or 2 with ``usage_only``), printed nothing that looks like a Python
    traceback, and on exit 2 printed 1 to ``max_error_lines`` lines on stderr, each a
    ``podium: error:`` line."""
    problems = []
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        frames = "".join(traceback.format_tb(exc.__traceback__)[-3:])
        problems.append(f"raised {type(exc).__name__}: {exc}\n{frames}")
    allowed = (0, 2) if usage_only else (0, 1, 2)
    if result.exit_code not in allowed:
        problems.append(f"exit code {result.exit_code}, expected one of {allowed}")
    for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        found = _TRACEBACK_LINES.search(text)
        if found:
            problems.append(f"traceback-like text on {name}: {found.group(0)!r}")
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        if not 1 <= len(lines) <= max_error_lines:
            problems.append(f"{len(lines)} lines on stderr (expected 1..{max_error_lines})")
        problems += [
            f"not an error line: {line!r}" for line in lines if not line.startswith(ERROR_PREFIX)
        ]
    return problems


def _parsed(data: bytes) -> dict[str, Any] | None:
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def _entries(data: bytes) -> int:
    """How many connectors and pipelines the file defines (validate reports each)."""
    doc = _parsed(data)
    if doc is None:
        return 1
    count = sum(
        len(doc.get(k)) for k in ("connectors", "pipelines") if isinstance(doc.get(k), dict)
    )
    return max(1, count)


def _defines(data: bytes, pipeline: str) -> bool:
    """Whether the file parses and has a table for ``pipeline`` (else run's exit 2 is
    about the name, which validating the whole file has no reason to reject)."""
    doc = _parsed(data)
    if doc is None:
        return False
    pipelines = doc.get("pipelines")
    return isinstance(pipelines, dict) and isinstance(pipelines.get(pipeline), dict)


# --------------------------------------------------------------------------------------
# The fixtures: the demo API on loopback, and nothing beyond it.
# --------------------------------------------------------------------------------------


def _loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return True  # an AF_UNIX path or socketpair: never the network
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(scope="module")
def demo_url() -> Iterator[str]:
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode("idna", "replace")
        if host is not None and not _loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"fuzz test: {host!r} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and not _loopback(address[0]):
            raise ConnectionRefusedError(f"fuzz test: {address[0]!r} is not loopback")
        return real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp, serve_demo_api() as url:
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        mp.setattr(socket.socket, "connect", connect)
        # The demo API logs a request it cannot parse (a header name with a space) with a
        # traceback, to this process's stderr: that is the test's server, not podium.
        mp.setattr(logging.getLogger("aiohttp.server"), "disabled", True)
        yield url


STATS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    if STATS:
        summary = ", ".join(f"{k}={v}" for k, v in sorted(STATS.items()))
        print(f"\nconfig fuzz: {STATS['cases']} cases in {STATS['seconds']:.1f} s ({summary})")


def invoke(args: list[str], url: str) -> Result:
    env = {URL_VAR: url, TOKEN_VAR: None, UNSET_VAR: None, "PODIUM_CONFIG": None}
    return CliRunner().invoke(app, args, env=env)


def run_case(case: Case, url: str, scratch: Path) -> dict[str, Result]:
    """Write the case to a fresh folder, and validate and run it there."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    path = folder / "config.toml"
    path.write_bytes(case.data)
    cwd = os.getcwd()
    os.chdir(folder)  # a database URL that lost its path lands here, not in the repo
    try:
        return {
            "validate": invoke(["validate", "--config", str(path)], url),
            "run": invoke(["run", case.pipeline, "--config", str(path)], url),
        }
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)


def case_problems(case: Case, results: dict[str, Result]) -> list[str]:
    v, r = results["validate"], results["run"]
    problems = [
        f"validate: {p}"
        for p in cli_problems(v, max_error_lines=_entries(case.data), usage_only=True)
    ]
    problems += [f"run: {p}" for p in cli_problems(r)]
    if v.exit_code == 0 and r.exit_code == 2 and _defines(case.data, case.pipeline):
        problems.append(f"validate accepted what run rejects: {r.stderr.strip()!r}")
    return problems


def explain(case: Case, results: dict[str, Result], problems: list[str]) -> str:
    parts = [*problems]
    for name, result in results.items():
        parts += [f"--- {name}: exit {result.exit_code}, stderr ---", result.stderr.rstrip()]
    return "\n".join([*parts, "--- config.toml ---", case.text()])


# --------------------------------------------------------------------------------------
# The tests.
# --------------------------------------------------------------------------------------

# 1500 cases take about 35 s here (2 cores), the whole file about 42 s: under the 60 s
# budget. PODIUM_FUZZ_EXAMPLES=20000 fuzzes longer by hand; CI keeps the fixed number.
FUZZ_EXAMPLES = int(os.environ.get("PODIUM_FUZZ_EXAMPLES", "1500"))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=broken_configs())
def test_mutated_configs_fail_cleanly_or_run(case: Case, demo_url: str, scratch: Path) -> None:
    started = time.perf_counter()
    results = run_case(case, demo_url, scratch)
    STATS["cases"] += 1
    STATS["seconds"] += time.perf_counter() - started
    outcome = f"validate={results['validate'].exit_code} run={results['run'].exit_code}"
    STATS[outcome] += 1
    event(outcome)
    problems = case_problems(case, results)
    assert not problems, explain(case, results, problems)


@pytest.mark.parametrize("seed", list(SEEDS))
def test_seeds_are_valid_and_run(seed: str, demo_url: str, scratch: Path) -> None:
    """Each seed validates and runs ok as written: the mutations start from real configs."""
    text = dump_toml(SEEDS[seed])
    assert tomllib.loads(text) == SEEDS[seed]
    results = run_case(Case(seed, SEED_PIPELINE[seed], text.encode(), []), demo_url, scratch)
    assert results["validate"].exit_code == 0, results["validate"].output
    assert results["run"].exit_code == 0, results["run"].output
    assert " run ok in " in results["run"].stderr, results["run"].stderr


def test_nothing_leaves_loopback(demo_url: str) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="not loopback"):
        sock.connect(("192.0.2.1", 80))
    with pytest.raises(socket.gaierror, match="not loopback"):
        socket.getaddrinfo("example.com", 80)


def test_the_checker_accepts_a_clean_failure_and_rejects_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[connectors.api\nkind = 'http'", encoding="utf-8")
    clean = CliRunner().invoke(app, ["run", "p", "--config", str(path)])
    assert clean.exit_code == 2
    assert cli_problems(clean) == []

    runner = CliRunner()
    tb = (
        "Traceback (most recent call last):\n"
        '  File "/x/podium/cli/_run.py", line 12, in run\n'
        "KeyError: 'kind'\n"
    )
    crashed = Result(runner, b"", tb.encode(), tb.encode(), None, 1, None)
    assert any("traceback" in p for p in cli_problems(crashed))
    raised = Result(runner, b"", b"", b"", None, 1, KeyError("kind"))
    assert any("raised KeyError" in p for p in cli_problems(raised))
    two_lines = f"{ERROR_PREFIX}a\n{ERROR_PREFIX}b\n".encode()
    assert cli_problems(Result(runner, b"", two_lines, two_lines, None, 2, SystemExit(2)))
    unprefixed = b"something went wrong\n"
    assert cli_problems(Result(runner, b"", unprefixed, unprefixed, None, 2, SystemExit(2)))


# Each reported bug, minimised, as the command a user would type. config.toml is written
# to a fresh folder; ${PODIUM_FUZZ_URL} is the demo API on loopback.
_FETCH = """
[connectors.api]
kind = "http"
base_url = "${PODIUM_FUZZ_URL}"
%s
[pipelines.p]
%s
[[pipelines.p.stages]]
name = "get"
kind = "fetch"
connector = "api"
path = "/cities"
records = "cities"
%s"""


# Bugs this fuzzer found (all fixed): each stays as the command a user would type, and
# must now fail cleanly — one line, exit 2, no traceback — or run.
FOUND_BUGS: list[tuple[str, str, list[str]]] = [
    # (bug, config.toml, command)
    ("carry-list", _FETCH % ("", "", "carry = [{ a = 1 }]\n"), ["validate"]),
    ("carry-list", _FETCH % ("", "", 'carry = [["id"]]\n'), ["run", "p"]),
    ("duration-overflow", _FETCH % ("", "schedule = { interval = 10000000000000000000 }\n", ""),
     ["validate"]),
    ("duration-overflow", _FETCH % ("", "schedule = { interval = 5, jitter = inf }\n", ""),
     ["run", "p"]),
    ("duration-overflow",
     "[scheduler]\ngrace = 1e300\n" + _FETCH % ("", "schedule = { interval = 5 }\n", ""),
     ["validate"]),
    ("line-break-in-name", _FETCH % ('"a\\nb" = 5\n', "", ""), ["run", "p"]),
    ("line-break-in-name", _FETCH.replace("pipelines.p", 'pipelines."a\\nb"') % ("", "", ""),
     ["run", "p"]),
    ("line-break-in-name", _FETCH % ("", "", '\n[[pipelines.p.stages]]\nname = "pick"\n'
     'kind = "transform"\nselect = ["id\\n"]\n\n[[pipelines.p.stages]]\nname = "save"\n'
     'kind = "store"\ntable = "t"\nkey = ["id"]\n'), ["validate"]),
    ("nul-in-database-url",
     '[database]\nurl = "sqlite:///fuzz.db\\u0000"\n' + _FETCH % ("", "", ""), ["run", "p"]),
    ("infinite-timeout", _FETCH % ("timeout = inf\n", "", ""), ["run", "p"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "args"),
    [pytest.param(text, args, id=f"{bug}-{i}") for i, (bug, text, args) in enumerate(FOUND_BUGS)],
)
def test_bugs_the_fuzzer_found_stay_fixed(
    text: str, args: list[str], demo_url: str, tmp_path: Path
) -> None:
    """The bugs the fuzzer found, minimised (carry lists of tables, durations past
    timedelta's range, line breaks in names, infinite timeouts, a NUL in the database
    URL): each fails cleanly now."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = invoke([*args, "--config", str(path)], demo_url)
    finally:
        os.chdir(cwd)
    assert cli_problems(result, usage_only=args[0] == "validate") == []
