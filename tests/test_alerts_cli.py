"""``podium alerts``, ``podium checks``, ``podium validate`` and ``podium run`` on
monitoring configs: one clear line for each mistake, secrets masked everywhere."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import anyio
import orjson
import pytest
from typer.testing import CliRunner, Result

from podium.cli import app

from .alert_servers import SMTPServer, WebhookReceiver, closed_port, running_smtp_server
from .daemon_helpers import sql
from .monitoring_helpers import Script, monitoring_config

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
]


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with running_smtp_server() as server:
        yield server


async def podium(*args: str, env: dict[str, str] | None = None) -> Result:
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return await anyio.to_thread.run_sync(invoke)


def one_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    ("alerts", "monitor", "extra", "expected"),
    [
        (
            "",
            '[monitors.api]\nurl = "http://127.0.0.1:9/h"\ninterval = "1m"\nalerts = ["ops"]\n',
            "",
            r"monitors\.api\.alerts\[0\]: unknown alert 'ops' \(alerts: none",
        ),
        (
            '[alerts.ops]\nurl = "nosuch://x"\n',
            "",
            "",
            r"alerts\.ops: urls\[0\] nosuch://…: Apprise does not know the URL scheme",
        ),
        (
            "",
            '[monitors.api]\nurl = "http://127.0.0.1:9/h"\nconnector = "x"\ninterval = "1m"\n',
            "",
            r"monitors\.api: .*exactly one of 'url' or 'connector'",
        ),
        (
            '[alerts.ops]\nwebhook = { url = "http://127.0.0.1:9/h" }\n',
            "",
            '[maintenance.nightly]\ncron = "0 2 * * *"\n',
            r"maintenance\.nightly: .*needs both cron and duration",
        ),
        (
            '[alerts.ops]\nwebhook = { url = "http://127.0.0.1:9/h" }\n',
            '[monitors.api]\nurl = "http://127.0.0.1:9/h"\ninterval = "1m"\n'
            'alerts = [{ alert = "ops", on = ["failed"] }]\n',
            "",
            r"monitors\.api\.alerts\[0\]: 'on' applies to a pipeline's run alerts",
        ),
        (
            '[alerts.ops]\nwebhook = { url = "http://127.0.0.1:9/h" }\nrepeat = "0s"\n',
            "",
            "",
            r"alerts\.ops\.repeat: .*positive",
        ),
    ],
)
async def test_monitoring_mistakes_are_one_line(
    tmp_path: Path, alerts: str, monitor: str, extra: str, expected: str
) -> None:
    config = monitoring_config(tmp_path, monitor=monitor, alerts=alerts, extra=extra)
    result = await podium("validate", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert re.search(expected, one_line(result)), result.stderr


async def test_a_monitor_run_from_the_command_line_notifies_and_masks_secrets(
    tmp_path: Path, serve, smtp_server: SMTPServer
) -> None:
    api = await serve(Script([503]).app())
    receiver = WebhookReceiver(fail_always=True, echo_authorization=True)
    hook = await serve(receiver.app())
    smtp_server.refuse = True
    token = "hook-token-4f9a1c"
    mailto = smtp_server.mailto(password="${SMTP_PASS}")
    alerts = (
        f'[alerts.ops]\nurl = "{mailto}"\n'
        f'webhook = {{ url = "{hook}/hook", headers = {{ Authorization = "Bearer ${{HOOK}}" }} }}\n'
        'failure_threshold = 1\ndelivery = { backoff = "0.1s", give_up_after = "0.5s" }\n'
    )
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\nalerts = ["ops"]\n'
    config = monitoring_config(tmp_path, monitor=monitor, alerts=alerts)
    env = {"SMTP_PASS": smtp_server.password, "HOOK": token}
    result = await podium("run", "api", "--config", str(config), env=env)
    assert result.exit_code == 1  # the monitor's check failed: the run did
    assert "not delivered" in result.stderr
    assert receiver.requests, "the webhook was tried"
    listing = await podium("alerts", "--config", str(config), env=env)
    as_json = await podium("alerts", "--config", str(config), "--json", env=env)
    assert as_json.exit_code == 0, as_json.stderr
    notifications = orjson.loads(as_json.output)["notifications"]
    assert notifications and {n["status"] for n in notifications} == {"failed"}
    stored = repr(sql(f"sqlite:///{tmp_path / 'podium.db'}", "SELECT * FROM podium_alert_outbox"))
    for text in (result.output, listing.output, as_json.output, stored):
        assert token not in text and smtp_server.password not in text
    assert "HTTP 500" in stored and "***" in stored
    assert "failed" in listing.output and "monitor api" in listing.output


async def test_mute_unmute_and_test(tmp_path: Path, serve) -> None:
    receiver = WebhookReceiver()
    hook = await serve(receiver.app())
    alerts = f'[alerts.ops]\nwebhook = {{ url = "{hook}/hook" }}\ndescription = "the ops room"\n'
    monitor = '[monitors.api]\nurl = "http://127.0.0.1:9/h"\ninterval = "1m"\nalerts = ["ops"]\n'
    config = monitoring_config(tmp_path, monitor=monitor, alerts=alerts)
    args = ("--config", str(config))
    muted = await podium("alerts", "mute", "api", "--for", "2h", "--reason", "deploy", *args)
    assert muted.exit_code == 0 and "muted api until" in muted.stdout
    listing = await podium("alerts", *args)
    assert "muted: api until" in listing.stdout and "(deploy)" in listing.stdout
    assert "monitor api" in listing.stdout  # what the alert is attached to
    unmuted = await podium("alerts", "unmute", "api", *args)
    assert unmuted.stdout.strip() == "unmuted api"
    again = await podium("alerts", "unmute", "api", *args)
    assert again.stdout.strip() == "api was not muted"
    unknown = await podium("alerts", "mute", "nope", *args)
    assert unknown.exit_code == 2 and "neither an alert nor a pipeline" in one_line(unknown)
    bad_for = await podium("alerts", "mute", "ops", "--for", "soon", *args)
    assert bad_for.exit_code == 2 and "--for" in one_line(bad_for)
    sent = await podium("alerts", "test", "ops", *args)
    assert sent.exit_code == 0, sent.output
    assert [r.json["kind"] for r in receiver.requests] == ["test"]
    assert "the ops room" in receiver.requests[0].json["body"]
    receiver.fail_always = True
    failed = await podium("alerts", "test", "ops", *args)
    assert failed.exit_code == 1 and "HTTP 500" in one_line(failed)


async def test_checks_lists_each_check_and_refuses_unknown_pipelines(tmp_path: Path, serve) -> None:
    api = await serve(Script([200, 503]).app())
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\n'
    monitor += f'[monitors.down]\nurl = "http://127.0.0.1:{closed_port()}/h"\ninterval = "1m"\n'
    config = monitoring_config(tmp_path, monitor=monitor, alerts="")
    args = ("--config", str(config))
    assert (await podium("checks", *args)).stdout.startswith("no check results yet")
    for name in ("api", "down"):
        await podium("run", name, *args)
    table = await podium("checks", *args, env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    rows = {line.split()[1]: line for line in table.stdout.splitlines() if "(monitor)" in line}
    assert "passing" in rows["api"] and "100.00%" in rows["api"]
    assert "failing" in rows["down"] and "0.00%" in rows["down"] and "refused" in rows["down"]
    unknown = await podium("checks", "nope", *args)
    assert unknown.exit_code == 2 and "no pipeline 'nope'" in one_line(unknown)
