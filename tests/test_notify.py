"""The alert senders against real destinations on loopback: an SMTP server (aiosmtpd)
reached through Apprise's ``mailto://``, and an aiohttp webhook receiver."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from podium import NotifyError
from podium.orchestrator import Redactor
from podium.orchestrator.alerts import FIELDS, AlertConfig, Notification, WebhookSpec, render_text
from podium.orchestrator.notify import check_urls, send

from .alert_servers import (
    SMTPServer,
    WebhookReceiver,
    closed_port,
    running_smtp_server,
    silent_server,
)

pytestmark = [
    pytest.mark.anyio,
    # aiosmtpd 1.4 warns about its own deprecated attribute on every successful AUTH.
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
]

AT = datetime(2025, 6, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    with running_smtp_server() as server:
        yield server


def notification(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "id": 42,
        "alert": "ops",
        "subject": "check demo/plausible",
        "kind": "down",
        "title": "",
        "body": "",
        "cause": "3 records failed: temp > `-60`",
        "pipeline": "demo",
        "run_id": "run-7f3a",
        "at": AT,
        "incident": "inc-9",
    }
    fields.update(changes)
    return Notification(**fields)


def webhook_alert(url: str, **spec: Any) -> AlertConfig:
    return AlertConfig.model_validate({"webhook": {"url": url, **spec}})


async def failure(config: AlertConfig, n: Notification | None = None, **kw: Any) -> NotifyError:
    with pytest.raises(NotifyError) as caught:
        await send("ops", config, n or notification(), redact=Redactor(), **kw)
    return caught.value


# -- the text -------------------------------------------------------------------------------
def test_render_text_says_what_when_and_why() -> None:
    title, body = render_text(notification())
    assert title == "DOWN: check demo/plausible"
    assert "Cause: 3 records failed: temp > `-60`" in body
    assert "Run: run-7f3a" in body
    assert "Pipeline: demo" in body
    assert "Time: 2025-06-01 12:30:05 UTC" in body  # converted from +02:00, zone named
    assert render_text(notification(kind="resolved", cause=None))[0].startswith("RESOLVED: ")
    assert "Cause" not in render_text(notification(cause=None))[1]
    # The notification's own text wins where it has some.
    assert notification(title="custom", body="").text() == ("custom", body)


def test_a_notification_needs_an_aware_time_and_a_known_kind() -> None:
    with pytest.raises(ValueError, match="timezone"):
        notification(at=datetime(2025, 6, 1, 12, 0))
    with pytest.raises(ValueError, match="kind"):
        notification(kind="sideways")


# -- email through Apprise ------------------------------------------------------------------
async def test_an_email_arrives_at_the_smtp_server(smtp_server: SMTPServer) -> None:
    config = AlertConfig(url=smtp_server.mailto())
    assert check_urls(config) == []
    await send("ops", config, notification(), redact=Redactor())

    [mail] = smtp_server.messages
    assert mail.subject == "DOWN: check demo/plausible"
    assert mail.login == "podium"
    assert mail.rcpt_tos == ["ops@example.com"]
    assert mail.mail_from == "podium@example.com"
    text = mail.text()
    assert "3 records failed" in text
    assert "run-7f3a" in text
    assert "2025-06-01 12:30:05 UTC" in text


async def test_a_refusing_mail_server_gives_apprises_reason(smtp_server: SMTPServer) -> None:
    smtp_server.refuse = True
    config = AlertConfig(urls=[smtp_server.mailto()])
    error = await failure(config)

    assert error.retryable
    assert re.search(r"\b554\b", str(error))  # the reply code, not part of a port number
    assert "Message refused by policy" in str(error)
    assert "Sending email to" in str(error)  # Apprise's own words, not a generic failure
    [where] = error.failures
    assert where.startswith("urls[0] mailto://podium:")
    assert f"127.0.0.1:{smtp_server.port}" in where
    assert not smtp_server.messages


async def test_a_password_in_an_alert_url_never_appears(smtp_server: SMTPServer) -> None:
    secret = "hunter2-Wrong-Pass"
    config = AlertConfig(urls=[smtp_server.mailto(password=secret)])
    # The loader did not register the password with the redactor: it is still masked.
    error = await failure(config)

    assert re.search(r"\b535\b", str(error))  # the server's "authentication credentials invalid"
    texts = [str(error), error.message, *error.failures, *error.failures.values()]
    assert all(secret not in text for text in texts)
    assert not smtp_server.messages


async def test_a_mail_server_that_hangs_is_bounded() -> None:
    async with silent_server() as port:
        url = f"mailto://u:pw@127.0.0.1:{port}?from=podium@example.com&to=ops@example.com"
        started = datetime.now(UTC)
        error = await failure(AlertConfig(urls=[url]), apprise_timeout=0.5)
        assert datetime.now(UTC) - started < timedelta(seconds=3)
    assert error.retryable
    assert "timed out after 0.5s" in str(error)


async def test_unknown_apprise_schemes_are_found_before_sending(smtp_server: SMTPServer) -> None:
    config = AlertConfig(
        urls=[
            "foo://user:topsecret@example.com",
            "slack://",
            "https://x.test/h",
            smtp_server.mailto(),
        ]
    )
    problems = check_urls(config)

    assert len(problems) == 3
    assert problems[0].startswith("urls[0] foo://…: Apprise does not know the URL scheme foo://")
    assert problems[1].startswith("urls[1] slack://…: Apprise cannot use this slack:// URL: ")
    assert "Token" in problems[1]  # the plugin's own reason
    assert "json://" in problems[2]  # the hint for a plain web URL
    assert all("topsecret" not in p for p in problems)


async def test_a_url_apprise_cannot_use_is_not_retryable() -> None:
    error = await failure(AlertConfig(urls=["foo://example.com"]))
    assert not error.retryable
    assert "Apprise does not know the URL scheme foo://" in str(error)


# -- the webhook ----------------------------------------------------------------------------
async def test_the_webhook_receives_the_templated_body(serve: Any) -> None:
    receiver = WebhookReceiver()
    base = await serve(receiver.app())
    config = webhook_alert(
        f"{base}/hooks/ops",
        method="PUT",
        headers={"X-Team": "data"},
        body={
            "text": "{title} ({cause})",
            "id": "{id}",
            "incident": "{incident}",
            "nested": [{"kind": "{kind}", "at": "{at}"}, "{pipeline}/{run_id}"],
            "constant": 7,
            "no_cause": "cause: {incident} {cause}",
        },
    )
    await send("ops", config, notification(), redact=Redactor())

    [request] = receiver.requests
    assert request.method == "PUT"
    assert request.path == "/hooks/ops"
    assert request.headers["Idempotency-Key"] == "podium-42"
    assert request.headers["X-Team"] == "data"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json == {
        "text": "DOWN: check demo/plausible (3 records failed: temp > `-60`)",
        "id": 42,  # a lone placeholder keeps its type
        "incident": "inc-9",
        "nested": [{"kind": "down", "at": "2025-06-01T12:30:05+00:00"}, "demo/run-7f3a"],
        "constant": 7,
        "no_cause": "cause: inc-9 3 records failed: temp > `-60`",
    }


async def test_the_default_webhook_body_has_every_field(serve: Any) -> None:
    receiver = WebhookReceiver()
    config = webhook_alert(f"{await serve(receiver.app())}/")
    n = notification(id="out-5", kind="resolved", cause=None)
    await send("ops", config, n, redact=Redactor())

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.headers["Idempotency-Key"] == "podium-out-5"
    body = request.json
    assert list(body) == list(FIELDS)
    assert body["cause"] is None
    assert body["title"] == "RESOLVED: check demo/plausible"
    assert "has recovered" in body["body"]
    assert body["at"] == "2025-06-01T12:30:05+00:00"


async def test_a_webhook_answering_500_is_retryable(serve: Any) -> None:
    receiver = WebhookReceiver(fail_next=1)
    base = await serve(receiver.app())
    config = webhook_alert(f"{base}/hook")
    error = await failure(config)

    assert error.retryable
    assert "HTTP 500 Internal Server Error: receiver is down (test)" in str(error)
    port = base.rsplit(":", 1)[1]
    assert list(error.failures) == [f"webhook POST http://127.0.0.1:{port}"]
    # The next delivery of the same notification carries the same key.
    await send("ops", config, notification(), redact=Redactor())
    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert keys == ["podium-42", "podium-42"]


@pytest.mark.parametrize(("status", "retryable"), [(404, False), (400, False), (429, True)])
async def test_a_4xx_is_final_except_408_and_429(serve: Any, status: int, retryable: bool) -> None:
    receiver = WebhookReceiver(fail_always=True, status=status, answer="no")
    error = await failure(webhook_alert(f"{await serve(receiver.app())}/"))
    assert error.retryable is retryable
    assert f"HTTP {status}" in str(error)


async def test_a_webhook_to_a_closed_port_is_retryable() -> None:
    error = await failure(webhook_alert(f"http://127.0.0.1:{closed_port()}/hook"))
    assert error.retryable
    assert "connection refused" in str(error)


async def test_a_slow_webhook_times_out(serve: Any) -> None:
    receiver = WebhookReceiver(delay=2)
    error = await failure(webhook_alert(f"{await serve(receiver.app())}/", timeout=0.3))
    assert error.retryable
    assert "timed out after 0.3s" in str(error)


async def test_webhook_secrets_stay_out_of_errors(serve: Any) -> None:
    receiver = WebhookReceiver(fail_always=True, echo_authorization=True)
    base = await serve(receiver.app())
    in_url = webhook_alert(base.replace("http://", "http://hook:pathpass@") + "/h/B0/tokenInPath")
    in_header = webhook_alert(f"{base}/h", headers={"Authorization": "Bearer tok-inline-123"})
    errors = [await failure(in_url), await failure(in_header)]

    basic = receiver.requests[0].headers["Authorization"].removeprefix("Basic ")
    assert "you sent Authorization: Basic ***" in str(errors[0])  # aiohttp's encoding, too
    assert "you sent Authorization: ***" in str(errors[1])
    for secret in ("pathpass", "tokenInPath", basic, "tok-inline-123"):
        assert all(secret not in str(error) for error in errors)


def test_webhook_credentials_go_in_one_place() -> None:
    with pytest.raises(ValidationError, match="not both"):
        webhook_alert("https://u:p@example.com/h", headers={"authorization": "Bearer x"})


# -- several destinations -------------------------------------------------------------------
async def test_every_destination_is_tried_and_each_failure_named(
    serve: Any, smtp_server: SMTPServer
) -> None:
    receiver = WebhookReceiver(fail_always=True)
    config = AlertConfig.model_validate(
        {
            "urls": [smtp_server.mailto(), "foo://nowhere"],
            "webhook": {"url": f"{await serve(receiver.app())}/"},
        }
    )
    error = await failure(config)

    assert len(smtp_server.messages) == 1  # delivered, despite the others failing
    assert len(receiver.requests) == 1
    assert "could not notify 2 of 3 destinations" in str(error)
    assert [key.split()[0] for key in error.failures] == ["urls[1]", "webhook"]
    assert error.retryable  # the webhook's 500 may pass next time


async def test_concurrent_failures_keep_their_own_reasons(smtp_server: SMTPServer) -> None:
    apprise = pytest.importorskip("apprise")
    if not hasattr(apprise, "AppriseResult"):
        pytest.skip("Apprise 1 has one shared log: reasons of concurrent sends can mix")
    smtp_server.refuse = True
    config = AlertConfig(urls=[smtp_server.mailto(), f"json://127.0.0.1:{closed_port()}/x"])
    error = await failure(config)

    mail, web = error.failures.values()
    # The SMTP server's own refusal text, not its code: "554" also turns up in port numbers.
    assert "refused by policy" in mail and "JSON" not in mail
    assert "Connection refused" in web and "refused by policy" not in web


# -- the config tables ----------------------------------------------------------------------
def test_an_alert_table_needs_a_destination() -> None:
    with pytest.raises(ValidationError, match="needs a destination"):
        AlertConfig.model_validate({"description": "nothing"})


def test_header_values_with_cr_or_lf_are_refused() -> None:
    for value in ("a\r\nX-Injected: 1", "a\nb"):
        with pytest.raises(ValidationError, match="CR, LF"):
            webhook_alert("https://hooks.example.com/x", headers={"X-Note": value})
    with pytest.raises(ValidationError, match="header name"):
        webhook_alert("https://hooks.example.com/x", headers={"Bad Name": "v"})


def test_the_alert_table_fields() -> None:
    config = AlertConfig.model_validate(
        {"url": "json://localhost/a", "urls": ["ntfy://topic"], "repeat": "2s"}
    )
    assert config.urls == ["ntfy://topic", "json://localhost/a"]
    assert config.url is None
    assert config.repeat == timedelta(seconds=2)
    assert (config.failure_threshold, config.success_threshold) == (3, 2)
    assert config.send_on_resolved and not config.default
    with pytest.raises(ValidationError):
        AlertConfig.model_validate({"url": "json://x", "failure_threshold": 0})
    with pytest.raises(ValidationError):
        AlertConfig.model_validate({"url": "json://x", "colour": "red"})
    with pytest.raises(ValidationError, match="http:// or https://"):
        webhook_alert("ftp://example.com/x")
    with pytest.raises(ValidationError, match=r"unknown placeholder \{severity\}"):
        webhook_alert("https://example.com/x", body={"s": "{severity}"})
    assert WebhookSpec(url="https://example.com").timeout == 10


def test_importing_the_package_does_not_import_apprise() -> None:
    code = (
        "import sys, podium.orchestrator.alerts, podium.orchestrator.notify; "
        "assert 'apprise' not in sys.modules and 'aiohttp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
