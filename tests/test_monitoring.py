"""Monitoring end to end, in-process: monitors, response checks that see every outcome,
alert thresholds, resolve and reminders — proven by a real SMTP server (aiosmtpd) and a
real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
import trustme
from aiohttp import web

from podium.jobs import Daemon
from podium.orchestrator import Config, open_database, run_pipeline
from podium.orchestrator.notify import Dispatcher
from podium.orchestrator.storage import Monitoring

from .alert_servers import SMTPServer, WebhookReceiver, closed_port, running_smtp_server
from .daemon_helpers import sql, wait_for
from .monitoring_helpers import Script, load, monitoring_config, run_and_deliver

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
]


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with running_smtp_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_url(request: pytest.FixtureRequest) -> str | None:
    """The journal: a SQLite file in the test's directory (None), or a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


def _alert(smtp: SMTPServer, hook: str, **extra: str) -> str:
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return (
        f'[alerts.ops]\nurl = "{smtp.mailto()}"\nwebhook = {{ url = "{hook}/hook" }}\n'
        f"failure_threshold = 3\nsuccess_threshold = 2\n{lines}"
    )


async def test_one_down_and_one_resolved_through_mail_and_webhook(
    tmp_path: Path, serve, smtp_server: SMTPServer
) -> None:
    """200, then 503 four times, then 200 three times, thresholds 3/2: one "down" after
    the third failure, one "resolved" after the second pass — nothing else."""
    script = Script([200, 503, 503, 503, 503, 200, 200, 200])
    api = await serve(script.app())
    receiver = WebhookReceiver()
    hook = await serve(receiver.app())
    monitor = (
        f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\n'
        'conditions = ["status == `200`", "elapsed_ms < `5000`"]\nalerts = ["ops"]\n'
    )
    config = load(monitoring_config(tmp_path, monitor=monitor, alerts=_alert(smtp_server, hook)))
    kinds_after: list[list[str]] = []
    for _ in range(8):
        await run_and_deliver(config, "api")
        kinds_after.append([r.json["kind"] for r in receiver.requests])
    assert script.seen == 8
    assert kinds_after == [
        [],
        [],
        [],
        ["down"],  # the third consecutive failure
        ["down"],
        ["down"],
        ["down", "resolved"],  # the second consecutive pass
        ["down", "resolved"],
    ]
    subjects = [m.subject for m in smtp_server.messages]
    assert subjects == ["DOWN: monitor api", "RESOLVED: monitor api"]
    down = receiver.requests[0].json
    assert down["subject"] == "monitor api" and down["pipeline"] == "api"
    assert "HTTP 503" in down["cause"] and "expected status == `200`" in down["cause"]
    assert receiver.requests[1].json["incident"] == down["incident"]
    # Each notification went once: the webhook saw distinct idempotency keys.
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert len(set(keys)) == 2


# -- every outcome reaches the check ---------------------------------------------------------
@contextlib.asynccontextmanager
async def https_server(cert: trustme.LeafCert) -> AsyncIterator[str]:
    """A health endpoint over HTTPS on loopback, serving ``cert``."""

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/health", health)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _slow_app() -> web.Application:
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/health", slow)
    return app


async def test_timeouts_refusals_and_certificates_fail_with_their_cause(
    tmp_path: Path, serve
) -> None:
    ca = trustme.CA()
    soon = datetime.now(UTC) + timedelta(days=5)
    expiring = ca.issue_cert("127.0.0.1", not_after=soon)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    slow = await serve(_slow_app())
    refused = f"http://127.0.0.1:{closed_port()}"
    async with https_server(expiring) as secure:
        monitors = (
            f'[monitors.slow]\nurl = "{slow}/health"\ninterval = "1m"\ntimeout = "0.3s"\n'
            f'[monitors.refused]\nurl = "{refused}/health"\ninterval = "1m"\n'
            f'[monitors.expiring]\nurl = "{secure}/health"\ninterval = "1m"\n'
            f'tls = {{ ca_file = "{ca_file}" }}\n'
            'conditions = ["status == `200`", "certificate.expires_in_days > `14`"]\n'
            f'[monitors.untrusted]\nurl = "{secure}/health"\ninterval = "1m"\n'
        )
        config = load(monitoring_config(tmp_path, monitor=monitors, alerts=""))
        results = {name: await run_and_deliver(config, name) for name in config.monitors}
    checks = {name: result.checks[0] for name, result in results.items()}
    samples = {name: check.samples[0] for name, check in checks.items()}
    assert all(not check.ok for check in checks.values())
    assert samples["slow"]["error"] == "timeout" and samples["slow"]["status"] is None
    assert "timeout" in checks["slow"].cause and f"{slow}/health" in checks["slow"].cause
    assert samples["refused"]["error"] == "connection"
    assert samples["refused"]["connected"] is False
    assert "refused" in checks["refused"].cause
    assert samples["untrusted"]["error"] == "tls"
    assert "certificate" in checks["untrusted"].cause
    # The certificate is fine but about to expire: answered, connected, and failing one
    # condition, which the cause names.
    expiring_sample = samples["expiring"]
    assert expiring_sample["error"] is None and expiring_sample["status"] == 200
    assert 4.5 < expiring_sample["certificate"]["expires_in_days"] < 5.01
    assert expiring_sample["failed_conditions"] == ["certificate.expires_in_days > `14`"]
    assert checks["expiring"].cause.startswith("HTTP 200")
    assert "expected certificate.expires_in_days > `14`" in checks["expiring"].cause
    # The runs say the same: each monitor's run failed, on its check.
    assert {r.status for r in results.values()} == {"failed"}


# -- reminders, a notifier that is down, mutes ------------------------------------------------
async def _serve_dispatcher(config: Config, seconds: float) -> None:
    """A daemon's dispatcher loop (reminders included) for ``seconds``."""
    async with open_database(config.database.url) as db:
        dispatcher = Dispatcher(db, lambda: config, node="test")
        rules = [rule for rules in config.rules.values() for rule in rules]
        with anyio.move_on_after(seconds):
            await dispatcher.serve(lambda: rules, every=0.1)


async def test_reminders_repeat_while_failing_and_stop_on_resolve(tmp_path: Path, serve) -> None:
    script = Script([503])
    api = await serve(script.app())
    receiver = WebhookReceiver()
    hook = await serve(receiver.app())
    alerts = (
        f'[alerts.ops]\nwebhook = {{ url = "{hook}/hook" }}\nfailure_threshold = 1\n'
        'success_threshold = 1\nrepeat = "2s"\n'
    )
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\nalerts = ["ops"]\n'
    config = load(monitoring_config(tmp_path, monitor=monitor, alerts=alerts))
    await run_and_deliver(config, "api")
    assert [r.json["kind"] for r in receiver.requests] == ["down"]
    await _serve_dispatcher(config, 5.0)  # reminders at 2 s and 4 s
    kinds = [r.json["kind"] for r in receiver.requests]
    assert kinds == ["down", "reminder", "reminder"], kinds
    assert receiver.requests[1].json["title"] == "STILL DOWN: monitor api"
    script.statuses = [200]
    await run_and_deliver(config, "api")
    await _serve_dispatcher(config, 4.5)  # past two more reminder times: none comes
    kinds = [r.json["kind"] for r in receiver.requests]
    assert kinds == ["down", "reminder", "reminder", "resolved"], kinds
    incidents = {r.json["incident"] for r in receiver.requests}
    assert len(incidents) == 1


async def test_a_notifier_that_is_down_delays_no_run_and_is_retried(
    tmp_path: Path, serve, smtp_server: SMTPServer
) -> None:
    script = Script([503])
    api = await serve(script.app())
    receiver = WebhookReceiver(fail_always=True, delay=0.5)
    hook = await serve(receiver.app())
    smtp_server.refuse = True
    delivery = '{ backoff = "0.2s", max_backoff = "0.5s", give_up_after = "30s" }'
    never = '{ backoff = "0.2s", max_backoff = "0.2s", give_up_after = "1s" }'
    alerts = (
        f'[alerts.ops]\nurl = "{smtp_server.mailto()}"\nwebhook = {{ url = "{hook}/hook" }}\n'
        f"failure_threshold = 1\ndelivery = {delivery}\n"
        f'[alerts.gone]\nwebhook = {{ url = "http://127.0.0.1:{closed_port()}/hook" }}\n'
        f"failure_threshold = 1\ndelivery = {never}\n"
    )
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\nalerts = ["ops", "gone"]\n'
    config = load(monitoring_config(tmp_path, monitor=monitor, alerts=alerts))
    pipeline = config.pipeline("api")
    async with open_database(config.database.url) as db:
        started = anyio.current_time()
        result = await run_pipeline(
            pipeline,
            connectors=config.connectors_for(pipeline),
            database=db,
            alerts=config.rules["api"],
        )
        took = anyio.current_time() - started
        assert len(result.notifications) == 2
        # The run queued its notifications and sent none itself: delivering them would
        # have taken retries over seconds ("gone" gives up after 1 s, "ops" after 30 s).
        assert took < 1.0
        assert receiver.requests == [] and smtp_server.messages == []
        dispatcher = Dispatcher(db, lambda: config, node="test")
        monitoring = Monitoring(db)
        rules = config.rules["api"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(dispatcher.serve, lambda: rules)
            await wait_for(lambda: len(receiver.requests) >= 2, 10, what="two attempts")
            rows = {r["alert"]: r for r in await monitoring.notifications()}
            assert rows["ops"]["status"] == "pending" and rows["ops"]["attempts"] >= 1
            assert "HTTP 500" in rows["ops"]["last_error"]
            assert "refused by policy" in rows["ops"]["last_error"]
            # The receivers come back: the notification goes through on a retry (an
            # attempt in flight now may be the one that does).
            receiver.fail_always = False
            smtp_server.refuse = False

            async def ops_status() -> str:
                rows = {r["alert"]: r for r in await monitoring.notifications()}
                return str(rows["ops"]["status"])

            for _ in range(150):  # the journal is polled: nothing to wait on in-process
                if await ops_status() == "sent":
                    break
                await anyio.sleep(0.1)
            else:
                raise AssertionError("the notification was not delivered within 15 s")
            assert len(smtp_server.messages) == 1
            assert receiver.requests[-1].json["kind"] == "down"
            await anyio.sleep(1.5)  # "gone" is past its give_up_after by then
            tg.cancel_scope.cancel()
        rows = {r["alert"]: r for r in await monitoring.notifications()}
    assert rows["ops"]["status"] == "sent" and rows["ops"]["attempts"] >= 2
    assert rows["gone"]["status"] == "failed"
    assert "cannot connect" in rows["gone"]["last_error"]
    assert [m.subject for m in smtp_server.messages] == ["DOWN: monitor api"]


async def _down_with(
    tmp_path: Path, serve, alerts: str, database: str | None = None
) -> tuple[Config, list[int]]:
    """A monitor that fails once, with ``alerts``: the ids of the notifications queued."""
    api = await serve(Script([503]).app())
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\nalerts = ["ops"]\n'
    path = monitoring_config(tmp_path, monitor=monitor, alerts=alerts, database=database)
    config = load(path)
    pipeline = config.pipeline("api")
    async with open_database(config.database.url) as db:
        result = await run_pipeline(
            pipeline,
            connectors=config.connectors_for(pipeline),
            database=db,
            alerts=config.rules["api"],
        )
    return config, result.notifications


async def test_a_retry_goes_only_to_the_destinations_that_failed(
    tmp_path: Path, serve, smtp_server: SMTPServer, journal_url: str | None
) -> None:
    """The mail server takes the DOWN at once, the webhook refuses it three times: the
    retries go to the webhook alone — one mail in all — until it accepts."""
    receiver = WebhookReceiver(fail_next=3)
    hook = await serve(receiver.app())
    delivery = '{ backoff = "0.1s", max_backoff = "0.2s", give_up_after = "30s" }'
    alerts = (
        f'[alerts.ops]\nurl = "{smtp_server.mailto()}"\nwebhook = {{ url = "{hook}/hook" }}\n'
        f"failure_threshold = 1\ndelivery = {delivery}\n"
    )
    config, ids = await _down_with(tmp_path, serve, alerts, journal_url)
    async with open_database(config.database.url) as db:
        left = await Dispatcher(db, lambda: config, node="test").deliver(ids, within=10)
        assert left == []
        [row] = await Monitoring(db).notifications()
    assert [m.subject for m in smtp_server.messages] == ["DOWN: monitor api"]
    assert len(receiver.requests) == 4  # three refusals, then accepted
    assert len({r.headers["Idempotency-Key"] for r in receiver.requests}) == 1
    assert row["status"] == "sent" and row["attempts"] == 4
    mail, webhook = sorted(row["delivered"])
    assert mail.startswith("urls[0] mailto://") and webhook.startswith("webhook POST http://")
    assert smtp_server.password not in repr(row)  # a destination id holds no secret


async def test_giving_up_names_what_failed_and_what_was_delivered(
    tmp_path: Path, serve, smtp_server: SMTPServer
) -> None:
    receiver = WebhookReceiver(fail_always=True)
    hook = await serve(receiver.app())
    delivery = '{ backoff = "0.1s", max_backoff = "0.1s", give_up_after = "1s" }'
    alerts = (
        f'[alerts.ops]\nurl = "{smtp_server.mailto()}"\nwebhook = {{ url = "{hook}/hook" }}\n'
        f"failure_threshold = 1\ndelivery = {delivery}\n"
    )
    config, ids = await _down_with(tmp_path, serve, alerts)
    async with open_database(config.database.url) as db:
        await Dispatcher(db, lambda: config, node="test").deliver(ids, within=5)
        [row] = await Monitoring(db).notifications()
    assert len(receiver.requests) >= 3
    assert len(smtp_server.messages) == 1
    assert row["status"] == "failed"
    assert "could not notify 1 of 2 destinations: webhook POST" in row["last_error"]
    assert "HTTP 500" in row["last_error"]
    assert "delivered to urls[0] mailto://" in row["last_error"]
    assert smtp_server.password not in row["last_error"]


async def test_mutes_and_maintenance_record_but_do_not_send(tmp_path: Path, serve) -> None:
    script = Script([503])
    api = await serve(script.app())
    receiver = WebhookReceiver()
    hook = await serve(receiver.app())
    alerts = (
        f'[alerts.ops]\nwebhook = {{ url = "{hook}/hook" }}\nfailure_threshold = 1\n'
        "success_threshold = 1\n"
        f'[alerts.night]\nwebhook = {{ url = "{hook}/night" }}\nfailure_threshold = 1\n'
        "success_threshold = 1\n"
    )
    monitor = f'[monitors.api]\nurl = "{api}/health"\ninterval = "1m"\nalerts = ["ops", "night"]\n'
    # Always open for "night": the window began at midnight and lasts a day.
    extra = '[maintenance.always]\ncron = "0 0 * * *"\nduration = "24h"\nalerts = ["night"]\n'
    path = monitoring_config(tmp_path, monitor=monitor, alerts=alerts, extra=extra)
    config = load(path)
    async with open_database(config.database.url) as db:
        await Monitoring(db).mute("ops", datetime.now(UTC) + timedelta(hours=1), "deploy", "me")
    await run_and_deliver(config, "api")  # down: ops muted, night in maintenance
    assert receiver.requests == []
    async with open_database(config.database.url) as db:
        rows = {r["alert"]: r for r in await Monitoring(db).notifications()}
        # Held, not dropped: the incident is still open.
        assert rows["ops"]["status"] == "held" and "deploy" in rows["ops"]["last_error"]
        assert rows["night"]["status"] == "held"
        assert "maintenance window 'always'" in rows["night"]["last_error"]
        # The mute ends while the incident is still open: its "down" goes out after all.
        await Monitoring(db).unmute("ops")
        dispatcher = Dispatcher(db, lambda: config, node="test")
        await wait_for_async_db(dispatcher, lambda: len(receiver.requests) == 1, 30)
    assert [r.path for r in receiver.requests] == ["/hook"]
    script.statuses = [200]
    await run_and_deliver(config, "api")  # resolves both
    async with open_database(config.database.url) as db:
        dispatcher = Dispatcher(db, lambda: config, node="test")
        for _ in range(3):
            await dispatcher.dispatch()
        rows = await Monitoring(db).notifications()
    by = {(r["alert"], r["kind"]): r["status"] for r in rows}
    assert by[("ops", "resolved")] == "sent"
    # "night"'s outage was never told: its down and its resolve stay muted, recorded.
    assert by[("night", "down")] == "muted" and by[("night", "resolved")] == "muted"
    assert [r.json["kind"] for r in receiver.requests] == ["down", "resolved"]


async def wait_for_async_db(dispatcher: Dispatcher, predicate, within: float) -> None:
    """Dispatch rounds until ``predicate`` holds (a held row is looked at again later)."""
    with anyio.fail_after(within):
        while not predicate():
            await dispatcher.dispatch()
            await anyio.sleep(0.2)


async def test_an_incident_of_a_removed_monitor_is_closed_on_start_and_reload(
    tmp_path: Path, serve, journal_url: str | None
) -> None:
    """mon_a and mon_b are DOWN; a daemon starts with mon_b gone from the config, then
    reloads with mon_a gone too: each incident is closed as removed, once, and no
    RESOLVED is sent (nothing recovered)."""
    api = await serve(Script([503]).app())
    receiver = WebhookReceiver()
    hook = await serve(receiver.app())
    alerts = f'[alerts.ops]\nwebhook = {{ url = "{hook}/hook" }}\nfailure_threshold = 1\n'

    def monitor(name: str) -> str:
        return f'[monitors.{name}]\nurl = "{api}/health"\ninterval = "1h"\nalerts = ["ops"]\n'

    def write(monitors: str) -> Path:
        return monitoring_config(tmp_path, monitor=monitors, alerts=alerts, database=journal_url)

    path = write(monitor("mon_a") + monitor("mon_b"))
    config = load(path)
    for name in ("mon_a", "mon_b"):
        await run_and_deliver(config, name)
    assert [r.json["kind"] for r in receiver.requests] == ["down", "down"]

    async def states() -> dict[str, dict]:
        async with open_database(config.database.url) as db:
            return {r["pipeline"]: r for r in await Monitoring(db).states()}

    write(monitor("mon_a"))
    daemon = Daemon(path, node_id="closer")
    async with anyio.create_task_group() as tg:
        await tg.start(daemon.run)
        found = await states()
        assert found["mon_b"]["status"] == "ok" and found["mon_b"]["closed_as"] == "removed"
        assert found["mon_a"]["status"] == "open" and found["mon_a"]["closed_as"] is None
        write("")
        assert await daemon.reload()
        found = await states()
        assert found["mon_a"]["status"] == "ok" and found["mon_a"]["closed_as"] == "removed"
        await anyio.sleep(1.5)  # a dispatcher round: nothing more to send
        daemon.stop()
    assert [r.json["kind"] for r in receiver.requests] == ["down", "down"]
    async with open_database(config.database.url) as db:
        assert await Monitoring(db).states(open_only=True) == []


async def test_failed_probes_write_no_dead_letters(tmp_path: Path, serve) -> None:
    """An answer of 503 and a refused connection fail the monitor's check; neither is
    a dead letter (the check results are the monitor's history)."""
    api = await serve(Script([503]).app())
    monitors = (
        f'[monitors.answers]\nurl = "{api}/health"\ninterval = "1m"\n'
        f'[monitors.refused]\nurl = "http://127.0.0.1:{closed_port()}/health"\n'
        'interval = "1m"\n'
    )
    path = monitoring_config(tmp_path, monitor=monitors, alerts="")
    config = load(path)
    for name in ("answers", "refused"):
        result = await run_and_deliver(config, name)
        assert result.run.checks_failed == 1 and result.dead_letters == []
    url = config.database.url
    assert sql(url, "SELECT count(*) FROM podium_check_results WHERE ok = 0") == [(2,)]
    assert sql(url, "SELECT count(*) FROM podium_dead_letters") == [(0,)]
