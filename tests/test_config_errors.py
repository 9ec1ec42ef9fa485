"""Every kind of broken configuration gives one clear line naming what and where, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from podium.cli import app

from .config_helpers import BASE, config

ITEMS_LINE = BASE.splitlines().index('path = "/items"') + 1


def replace(old: str, new: str) -> object:
    return lambda tmp_path: config(tmp_path).replace(old, new, 1)


CASES: list[tuple[str, object, list[str], str]] = [
    # (case id, config text or builder, extra CLI args, expected text in the error line)
    ("invalid TOML", lambda t: "[connectors.api\nkind = 'http'", [], "invalid TOML"),
    ("unknown top-level key", lambda t: config(t) + "\n[databse]\nurl = 'x'\n", [],
     "databse: unknown key 'databse'"),
    ("unknown connector key", lambda t: config(t, connector_extra='base_ur = "x"'), [],
     "connectors.api.base_ur: unknown key 'base_ur'"),
    ("missing env var", lambda t: config(
        t, connector_extra='auth = { type = "bearer", token = "${PODIUM_TEST_NOPE}" }'), [],
     "connectors.api.auth.token: environment variable PODIUM_TEST_NOPE is not set"),
    ("unknown connector kind", replace('kind = "http"', 'kind = "htp"'), [],
     "unknown connector kind 'htp' (did you mean 'http'?) (known: http"),
    ("unknown connector in stage", replace('connector = "api"', 'connector = "apx"'), [],
     "unknown connector 'apx' (connectors: api)"),
    ("unknown stage kind", replace('kind = "fetch"', 'kind = "fetchh"'), [],
     "pipelines.p.stages[0]: unknown stage kind 'fetchh' (did you mean 'fetch'?)"),
    ("stage without a kind", replace('kind = "fetch"\n', ''), [],
     "pipelines.p.stages[0]: needs 'kind': one of fetch, transform"),
    # What the issue found accepted, or reported without saying what and where:
    ("not UTF-8", lambda t: config(t).encode().replace(b"/items", b"/it\xe9ms"), [],
     f"not UTF-8 text (byte 0xe9 on line {ITEMS_LINE}); save the file as UTF-8"),
    ("binary junk", lambda t: bytes(range(256)) * 4, [], "not UTF-8 text (byte 0x80 on line 2)"),
    ("null bytes", lambda t: b"\x00\x01\x02 = 3", [], "invalid TOML"),
    ("empty file", lambda t: "", [], "is empty: define a [pipelines.NAME] table"),
    ("only comments", lambda t: "# nothing here\n", [], "is empty"),
    ("brackets in an expression are text", lambda t: config(t, fetch_extra='records = "items[/x]"'),
     [], "stages[0].records: invalid JMESPath expression 'items[/x]': unknown token / at"),
    ("JMESPath error names the key", lambda t: config(t, fetch_extra='records = "items[?"'), [],
     "pipelines.p.stages[0].records: invalid JMESPath expression 'items[?': the expression "
     "ends too early"),
    ("typo inside schedule", lambda t: config(t, pipeline_extra='schedule = { intervall = "5m" }'),
     [], "pipelines.p.schedule.intervall: unknown key 'intervall' (did you mean 'interval'?)"),
    ("cron out of range", lambda t: config(t, pipeline_extra='schedule = { cron = "61 25 * * *" }'),
     [], "pipelines.p.schedule: cron '61 25 * * *': a field is out of range"),
    ("cron that never fires",
     lambda t: config(t, pipeline_extra='schedule = { cron = "0 0 30 2 *" }'),
     [], "cron '0 0 30 2 *' never fires"),
    ("unknown parameter in a template", lambda t: config(
        t, pipeline_extra='params = { kind = "a" }', fetch_extra='params = { k = "{params.knd}" }'),
     [], "stages[0] (get): {params.knd} names no parameter (parameters: kind)"),
    ("unclosed ${", lambda t: config(t, connector_extra='headers = { X = "${TOKEN" }'), [],
     "connectors.api.headers.X: a ${ is not closed"),
    ("typo in an auth key", lambda t: config(
        t, connector_extra='auth = { type = "bearer", tokn = "x" }'), [],
     "connectors.api.auth.tokn: unknown key 'tokn' (did you mean 'token'?)"),
    ("misspelt auth type", lambda t: config(
        t, connector_extra='auth = { type = "baerer", token = "x" }'), [],
     "connectors.api.auth: unknown type 'baerer' (did you mean 'bearer'?)"),
    ("misspelt paginator type", lambda t: config(
        t, fetch_extra='paginate = { type = "ofset" }'), [],
     "paginate: unknown type 'ofset' (did you mean 'offset'?)"),
    ("unknown stage key", lambda t: config(t, fetch_extra='pth = "/x"'), [],
     "pipelines.p.stages[0].pth: unknown key 'pth'"),
    ("stage reads unknown stage", lambda t: config(t) + '\n[[pipelines.p.stages]]\n'
     'name = "t"\nkind = "transform"\nfrom = "nope"\nselect = ["id"]\n', [],
     "stages[2] (t): reads unknown stage 'nope'"),
    ("cycle", lambda t: config(t) + '\n[[pipelines.p.stages]]\nname = "a"\nkind = "transform"\n'
     'from = "b"\nselect = ["id"]\n[[pipelines.p.stages]]\nname = "b"\nkind = "transform"\n'
     'from = "a"\nselect = ["id"]\n', [], "stages form a cycle: a → b"),
    ("store key not produced", lambda t: config(t).replace(
        '[[pipelines.p.stages]]\nname = "save"',
        '[[pipelines.p.stages]]\nname = "pick"\nkind = "transform"\nselect = ["name"]\n\n'
        '[[pipelines.p.stages]]\nname = "save"'), [],
     "stages[2] (save): the store key uses field 'id', which the input does not produce"),
    ("invalid JMESPath", lambda t: config(t, fetch_extra='records = "items[?"'), [],
     "invalid JMESPath expression 'items[?'"),
    ("callable that does not import", lambda t: config(t) + '\n[[pipelines.p.stages]]\n'
     'name = "t"\nkind = "transform"\nfrom = "get"\ncall = "no_such_module_x:fn"\n', [],
     "cannot import 'no_such_module_x'"),
    ("concurrency out of range", lambda t: config(t, connector_extra="concurrency = 0"), [],
     "connectors.api.concurrency: Input should be greater than or equal to 1"),
    ("wrong value type", lambda t: config(t, connector_extra='timeout = "fast"'), [],
     "connectors.api.timeout: Input should be a valid number"),
    ("unsupported database", replace('url = "sqlite:///', 'url = "mysql:///'), [],
     "database.url: unsupported database 'mysql'"),
    ("unknown paginator", lambda t: config(t, fetch_extra='paginate = { type = "pages" }'), [],
     "paginate"),
    ("duplicate stage name", replace('name = "save"', 'name = "get"'), [],
     "duplicate stage name 'get'"),
    ("template field not provided", lambda t: config(
        t, fetch_extra='for_each = [1, 2]\nas = "page"').replace('path = "/items"',
                                                               'path = "/items/{pg}"'), [],
     "a request template uses field 'pg'"),
    ("unknown coercion", lambda t: config(t).replace(
        '[[pipelines.p.stages]]\nname = "save"',
        '[[pipelines.p.stages]]\nname = "c"\nkind = "transform"\ncoerce = { id = "decimal" }\n\n'
        '[[pipelines.p.stages]]\nname = "save"'), [], "coerce.id: Input should be"),
    ("base_url without a scheme", replace('base_url = "http://127.0.0.1:9"',
                                          'base_url = "127.0.0.1:9"'), [],
     "connectors.api.base_url: must start with http:// or https://"),
    ("unknown auth type", lambda t: config(
        t, connector_extra='auth = { type = "kerberos" }'), [], "connectors.api.auth"),
    ("unknown pipeline", lambda t: config(t), ["--override-pipeline", "nope"],
     "no pipeline 'nope'"),
    ("bad --param", lambda t: config(t), ["--param", "oops"], "--param expects key=value"),
    ("unknown --param", lambda t: config(t), ["--param", "x=1"],
     "pipeline 'p' has no parameter x (parameters: none)"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "text", "args", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_config_gives_one_line_and_exit_2(
    tmp_path: Path, case: str, text: object, args: list[str], expected: str
) -> None:
    path = tmp_path / "config.toml"
    body = text(tmp_path)  # type: ignore[operator]
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    pipeline = "p"
    if args[:1] == ["--override-pipeline"]:
        pipeline, args = args[1], args[2:]
    result = CliRunner().invoke(app, ["run", pipeline, "--config", str(path), *args])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.stderr, result.stdout)
    assert len(lines) == 1, lines
    assert lines[0].startswith("podium: error: "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert expected in lines[0], lines[0]
    if case not in ("bad --param", "unknown --param", "unknown pipeline"):
        assert str(path) in lines[0], "the line names the file"


def test_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "p", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"podium: error: config file not found: {tmp_path}/nope.toml"


def test_a_broken_connector_does_not_break_other_pipelines(tmp_path: Path) -> None:
    """A missing env var in one connector only fails the pipelines that use it."""
    text = config(tmp_path) + (
        '\n[connectors.broken]\nkind = "http"\n'
        'auth = { type = "bearer", token = "${PODIUM_TEST_NOPE}" }\n'
        '\n[pipelines.other]\n[[pipelines.other.stages]]\nname = "g"\nkind = "fetch"\n'
        'connector = "broken"\n'
    )
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    ok = CliRunner().invoke(app, ["validate", "p", "--config", str(path)])
    assert ok.exit_code == 0, ok.stderr
    bad = CliRunner().invoke(app, ["validate", "other", "--config", str(path)])
    assert bad.exit_code == 2
    assert "PODIUM_TEST_NOPE" in bad.stderr
    everything = CliRunner().invoke(app, ["validate", "--config", str(path)])
    assert everything.exit_code == 2
    assert "connectors.broken.auth.token" in everything.stderr


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("0 0 L * *", "the scheduler cannot use cron '0 0 L * *': Unrecognized expression 'L'"),
        ("0 0 * * 8", "cron '0 0 * * 8': a field is out of range"),
    ],
)
def test_validate_checks_schedules_as_the_daemon_will(
    tmp_path: Path, cron: str, expected: str
) -> None:
    """croniter accepts 'L' (last day) but the daemon's scheduler does not: `validate`
    says so in one line, instead of a daemon that starts and crashes on it."""
    path = tmp_path / "config.toml"
    path.write_text(
        config(tmp_path, pipeline_extra=f'schedule = {{ cron = "{cron}" }}'), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["validate", "--config", str(path)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and expected in lines[0], lines
    assert "pipelines.p.schedule" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sqlite:////nonexistent/folder/p.db",
            "database.url: cannot open the SQLite database /nonexistent/folder/p.db (the "
            "folder /nonexistent/folder does not exist)",
        ),
        (
            "postgresql://postgres@127.0.0.1:1/test",
            "database.url: cannot open PostgreSQL at 127.0.0.1:1 (database 'test', user "
            "'postgres'): connection refused",
        ),
    ],
)
def test_a_database_that_cannot_be_opened_is_named(tmp_path: Path, url: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["runs", "--config", str(path)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and expected in lines[0], lines


def test_an_unset_scheduler_token_stops_the_daemon_side_only(tmp_path: Path) -> None:
    """`[scheduler] token = "${PODIUM_TOKEN}"` on a laptop without the variable: reading
    the journal works; validate and the daemon say what is missing, in one line."""
    from typer.testing import CliRunner

    from podium.cli import app

    from .config_helpers import config

    path = tmp_path / "config.toml"
    text = config(tmp_path) + '\n[scheduler]\ntoken = "${PODIUM_TEST_UNSET_TOKEN}"\n'
    path.write_text(text, encoding="utf-8")
    runner = CliRunner()
    runs = runner.invoke(app, ["runs", "--config", str(path)])
    assert runs.exit_code == 0, runs.stderr
    for command in (["validate"], ["daemon"]):
        done = runner.invoke(app, [*command, "--config", str(path)])
        assert done.exit_code == 2, (command, done.exit_code, done.stderr)
        [line] = [line for line in done.stderr.splitlines() if line.strip()]
        assert "scheduler.token: environment variable PODIUM_TEST_UNSET_TOKEN is not set" in line
