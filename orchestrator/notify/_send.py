"""Sending one notification to every destination of one alert.

``send`` delivers to each Apprise URL and to the webhook concurrently, waits for all of
them, and raises one ``NotifyError`` that names every destination that failed and why.
Each destination has an id that is safe to store (``urls[0] mailto://user:****@host``,
``webhook POST https://host``: its index and a masked form, never a secret); a retry
passes the ids that already accepted the notification and only the others are sent
to, so a mail server that took the "down" does not get it again while a webhook is away.
This is an I/O boundary in the style of ``http/_transport.py``: Apprise's and aiohttp's
failures are translated here, and every text leaving it passes through the Redactor.

- Apprise URLs (``mailto://``, ``slack://``, ``json://`` …): one ``Apprise`` object per
  URL, so a failure belongs to one destination. Apprise reports a failure as ``False``
  and says why only in its log, so its log is captured at DEBUG for the call and the
  reason is read from it (SMTP's ``554 …`` is a DEBUG line). Apprise runs blocking
  plugins (email) in its own worker threads inside ``async_notify``; the whole call is
  bounded with ``anyio.fail_after`` — a worker already blocked in a socket is abandoned
  by Apprise and ends on its own socket timeout (the URL's ``cto=``, 15 s by default).
- The webhook: one aiohttp session per send, closed by it, with an explicit
  ``ClientTimeout``; ``Idempotency-Key: podium-<notification id>`` lets a receiver drop
  a redelivery.

Apprise is imported on first send (in a worker thread: loading its ~190 plugins takes a
tenth of a second), never by ``import podium``.
"""

from __future__ import annotations

import base64
import importlib
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import orjson

from podium.orchestrator._redact import Redactor
from podium.pipeline import NotifyError, Template

from ..alerts import FIELDS, AlertConfig, Notification, WebhookSpec

# The longest an Apprise URL's send may take, connection and retries included.
APPRISE_TIMEOUT = 30.0
# How much of a failing webhook's answer an error shows.
_EXCERPT_CHARS = 200
_READ_BYTES = 4096
# Apprise plugins put the cause of a failure in a DEBUG line after the WARNING one:
# "Socket Exception: …", "Response Details: …", "JSONDecodeError: …".
_DETAIL_LINE = re.compile(r"^[A-Za-z][\w ]*(?:Exception|Error|Details)\b:?\s*")
_SMTP_REPLY = re.compile(r"^\((\d{3}), b?(['\"])(.*)\2\)$", re.S)
_SECRET_HEADER = re.compile(r"(?i)authorization|token|secret|password|key|cookie|signature")
_NOTIFY_TYPE = {"down": "failure", "reminder": "warning", "resolved": "success", "test": "info"}
_DEFAULT_BODY = {name: f"{{{name}}}" for name in FIELDS}


@dataclass(frozen=True)
class _Outcome:
    """What one destination did with a notification: ``sent`` it now, skipped it
    (accepted on an earlier attempt: neither sent nor failed), or ``failure``."""

    destination: str
    failure: str | None = None
    retryable: bool = True
    sent: bool = False


def _failed(destination: str, reason: str, *, retryable: bool = True) -> _Outcome:
    return _Outcome(destination, reason, retryable)


async def send(
    alert_name: str,
    config: AlertConfig,
    notification: Notification,
    *,
    redact: Redactor,
    apprise_timeout: float = APPRISE_TIMEOUT,
    delivered: Collection[str] = (),
) -> list[str]:
    """Send ``notification`` to every destination of alert ``alert_name`` whose id is
    not in ``delivered`` (those accepted it on an earlier attempt).

    Returns the ids of the destinations that accepted it now; otherwise raises one
    ``NotifyError`` naming each destination that failed and why (redacted), after all
    were tried, with the ids that did accept it in ``delivered``. ``retryable`` is
    False only when no failure can be helped by sending again.
    """
    scrub = _scrubber(config, redact)
    title, body = notification.text()
    done = frozenset(delivered)
    outcomes: list[_Outcome | None] = [None] * (len(config.urls) + (config.webhook is not None))

    def skip(destination: str) -> bool:
        return scrub(destination) in done

    async def deliver(index: int, attempt: Callable[[], Awaitable[_Outcome]]) -> None:
        outcomes[index] = await attempt()

    async with anyio.create_task_group() as tg:
        for i, url in enumerate(config.urls):
            attempt = partial(
                _send_apprise, i, url, title, body, notification.kind, apprise_timeout, skip
            )
            tg.start_soon(deliver, i, attempt)
        if config.webhook is not None:
            tg.start_soon(
                deliver,
                len(config.urls),
                partial(_send_webhook, config.webhook, notification, skip),
            )

    finished = [o for o in outcomes if o is not None]
    accepted = [scrub(o.destination) for o in finished if o.sent]
    failed = [o for o in finished if o.failure is not None]
    if not failed:
        return accepted
    failures = {scrub(o.destination): scrub(o.failure or "") for o in failed}
    total = len(outcomes)
    listing = "; ".join(f"{where}: {why}" for where, why in failures.items())
    raise NotifyError(
        f"alert {alert_name!r} could not notify {len(failed)} of {total} "
        f"destination{'s' if total != 1 else ''}: {listing}",
        retryable=any(o.retryable for o in failed),
        alert=alert_name,
        failures=failures,
        delivered=accepted,
    )


def destinations(config: AlertConfig) -> list[str]:
    """What ``config`` notifies, safe to show: each URL's scheme, the webhook's origin
    (a URL's credentials, path and query often are its secret)."""
    shown = [f"urls[{i}] {_scheme_label(url)}" for i, url in enumerate(config.urls)]
    if config.webhook is not None:
        shown.append(_webhook_label(config.webhook))
    return shown


def _webhook_label(spec: WebhookSpec) -> str:
    parts = urlsplit(spec.url)
    origin = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return f"webhook {spec.method} {origin}"


def check_urls(config: AlertConfig, *, redact: Redactor | None = None) -> list[str]:
    """Problems with ``config``'s Apprise URLs that show without sending: a scheme Apprise
    does not know, or a URL its plugin refuses (a missing token, a bad ``mode=``).

    For the config loader (synchronous; imports Apprise). Each problem is one line,
    ``urls[1] foo://…: …``, redacted.
    """
    if not config.urls:
        return []  # a webhook only: no reason to load Apprise's ~190 plugins
    apprise = _import_apprise()
    scrub = _scrubber(config, redact or Redactor())
    problems = []
    for i, url in enumerate(config.urls):
        _plugin, problem = _instantiate(apprise, url)
        if problem is not None:
            problems.append(scrub(f"urls[{i}] {_scheme_label(url)}: {problem}"))
    return problems


# -- Apprise --------------------------------------------------------------------------------
_apprise_module: Any = None


def _import_apprise() -> Any:
    global _apprise_module
    if _apprise_module is None:
        # Used untyped: the same calls serve Apprise 1.8+ and 2.x, whose types differ.
        apprise: Any = importlib.import_module("apprise")
        # The first look-up loads every plugin: pay for it here, once.
        _ = "json" in apprise.NotificationManager()
        _apprise_module = apprise
    return _apprise_module


async def _apprise() -> Any:
    if _apprise_module is not None:
        return _apprise_module
    return await anyio.to_thread.run_sync(_import_apprise)


class _Verbosity:
    """Holds the ``apprise`` logger at DEBUG while any send needs its reasons.

    Counted, because sends overlap: restoring the level when one ends must not silence
    another still running (``apprise.LogCapture`` restores on exit, whoever else is in).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = logging.NOTSET

    @contextmanager
    def __call__(self) -> Iterator[None]:
        log = logging.getLogger("apprise")
        with self._lock:
            if self._users == 0:
                self._saved = log.level
                log.setLevel(logging.DEBUG)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    log.setLevel(self._saved)


_verbose = _Verbosity()


class _Collect(logging.Handler):
    """Collects the ``apprise`` logger's records as (level, message); with ``thread``,
    only those logged by that thread (a synchronous call: nobody else's)."""

    def __init__(self, thread: int | None = None) -> None:
        super().__init__(logging.DEBUG)
        self._thread = thread
        self.entries: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self._thread is None or record.thread == self._thread:
            try:
                self.entries.append((record.levelname, record.getMessage()))
            except Exception:  # a malformed log call must not break a send
                self.handleError(record)


@contextmanager
def _collect(thread: int | None = None) -> Iterator[_Collect]:
    handler = _Collect(thread)
    log = logging.getLogger("apprise")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _scheme_label(url: str) -> str:
    scheme = _scheme(url)
    return f"{scheme}://…" if scheme else "(no scheme)"


def _instantiate(apprise: Any, url: str) -> tuple[Any, str | None]:
    """Apprise's plugin for ``url``, or why there is none."""
    scheme = _scheme(url)
    if not scheme or scheme not in apprise.NotificationManager():
        hint = (
            " (Apprise posts JSON with json:// or jsons://; or give the alert a webhook)"
            if scheme in ("http", "https")
            else ""
        )
        what = f"the URL scheme {scheme}://" if scheme else "a URL without a scheme (name://…)"
        return None, f"Apprise does not know {what}{hint}"
    with _verbose(), _collect(threading.get_ident()) as log:
        plugin = apprise.Apprise.instantiate(url)
    if plugin is not None:
        return plugin, None
    warnings = [m for level, m in log.entries if level == "WARNING"]
    errors = [m for level, m in log.entries if level in ("ERROR", "CRITICAL")]
    reason = "; ".join(_one_line(m) for m in (warnings or errors)) or "no reason given"
    return None, f"Apprise cannot use this {scheme}:// URL: {reason}"


def _destination(index: int, url: str, plugin: Any) -> str:
    try:  # privacy=True masks the plugin's tokens and password; the query is noise
        shown = str(plugin.url(privacy=True)).split("?", 1)[0]
    except Exception:
        shown = _scheme_label(url)
    return f"urls[{index}] {shown}"


async def _send_apprise(
    index: int,
    url: str,
    title: str,
    body: str,
    kind: str,
    seconds: float,
    skip: Callable[[str], bool],
) -> _Outcome:
    apprise = await _apprise()
    plugin, problem = _instantiate(apprise, url)
    if problem is not None:
        return _failed(f"urls[{index}] {_scheme_label(url)}", problem, retryable=False)
    destination = _destination(index, url, plugin)
    if skip(destination):
        return _Outcome(destination)
    client = apprise.Apprise()
    client.add(plugin)
    # Apprise 2 keeps each service's log with its result (kept apart from other sends);
    # Apprise 1 only has the shared logger, so collect from that.
    modern = hasattr(apprise, "AppriseResult")
    extra = {"log_level": logging.DEBUG} if modern else {}
    shared = nullcontext(_Collect()) if modern else _collect()
    try:
        with _verbose(), shared as log, anyio.fail_after(seconds):
            result = await client.async_notify(
                body=body,
                title=title,
                notify_type=_NOTIFY_TYPE[kind],
                body_format=apprise.NotifyFormat.TEXT,
                **extra,
            )
    except TimeoutError:
        return _failed(destination, f"timed out after {seconds:g}s")
    except Exception as exc:  # a plugin bug must not hide the other destinations' outcome
        return _failed(destination, f"Apprise raised {type(exc).__name__}: {_one_line(str(exc))}")
    try:
        if result:
            return _Outcome(destination, sent=True)
        entries = (
            [(entry.level, entry.message) for entry in result.logs()]
            if modern and hasattr(result, "logs")
            else log.entries
        )
        return _failed(destination, _apprise_reason(entries))
    finally:
        if hasattr(result, "close"):  # Apprise 2 may keep a long log in a temporary file
            result.close()


def _apprise_reason(entries: list[tuple[str, str]]) -> str:
    """Apprise's own words for a failure: its warnings, then the details it logs at DEBUG
    (``Sending email to "ops@…" failed: 554 5.7.1 Message refused``)."""
    warnings: list[str] = []
    details: list[str] = []
    for level, message in entries:
        if level in ("WARNING", "ERROR", "CRITICAL"):
            warnings.append(_one_line(message))
        elif level == "DEBUG" and (match := _DETAIL_LINE.match(message)):
            detail = _one_line(message[match.end() :] if "Exception" in match[0] else message)
            details.append(_SMTP_REPLY.sub(r"\1 \3", detail))
    warnings = list(dict.fromkeys(w for w in warnings if w))
    details = list(dict.fromkeys(d for d in details if d))
    if not warnings and not details:
        return "Apprise reported a failure and logged no reason"
    head = "; ".join(warnings)
    tail = "; ".join(details)
    if head and tail:
        return f"{head.rstrip('.')}: {tail}"
    return head or tail


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- the webhook ----------------------------------------------------------------------------
async def _send_webhook(
    spec: WebhookSpec, notification: Notification, skip: Callable[[str], bool]
) -> _Outcome:
    import aiohttp

    # Scheme, host and port only: a webhook's path often is its secret (…/hooks/T0/B0/XyZ).
    destination = _webhook_label(spec)
    if skip(destination):
        return _Outcome(destination)
    payload = orjson.dumps(
        _render_body(spec.body if spec.body is not None else _DEFAULT_BODY, notification.values())
    )
    headers = {"Content-Type": "application/json", "User-Agent": "podium-alerts"}
    headers.update((k, v) for k, v in spec.headers.items() if k.lower() != "idempotency-key")
    headers["Idempotency-Key"] = f"podium-{notification.id}"
    timeout = aiohttp.ClientTimeout(total=spec.timeout, sock_connect=min(spec.timeout, 10))
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(
                spec.method, spec.url, data=payload, headers=headers, allow_redirects=False
            ) as resp,
        ):
            if 200 <= resp.status < 300:
                return _Outcome(destination, sent=True)
            excerpt = await _excerpt(resp)
    except TimeoutError:
        return _failed(destination, f"timed out after {spec.timeout:g}s")
    except aiohttp.ClientConnectorDNSError as exc:
        return _failed(destination, f"cannot resolve {exc.host}")
    except aiohttp.ClientConnectorCertificateError as exc:
        return _failed(destination, f"certificate rejected: {_os_reason(exc.certificate_error)}")
    except aiohttp.ClientSSLError as exc:
        return _failed(destination, f"TLS failed: {_os_reason(exc)}")
    except aiohttp.ClientConnectorError as exc:
        return _failed(
            destination, f"cannot connect to {exc.host}:{exc.port}: {_os_reason(exc.os_error)}"
        )
    except aiohttp.ClientError as exc:
        return _failed(destination, f"connection broken: {_os_reason(exc)}")
    except ValueError as exc:  # aiohttp refused to build the request: the same next time
        return _failed(destination, f"request not sent: {_one_line(str(exc))}", retryable=False)
    status = resp.status
    what = f"HTTP {status} {resp.reason or ''}".rstrip()
    if 300 <= status < 400:
        what += " (redirects are not followed)"
    if excerpt:
        what += f": {excerpt}"
    # 4xx says the request itself is wrong, and will be again; 408 and 429 ask for later.
    retryable = not (400 <= status < 500 and status not in (408, 429))
    return _failed(destination, what, retryable=retryable)


async def _excerpt(resp: Any) -> str:
    raw: bytes = await resp.content.read(_READ_BYTES)
    text = " ".join(raw.decode("utf-8", errors="replace").split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def _os_reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown reason"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # "connection refused"
    text = getattr(exc, "strerror", None) or str(exc).strip()
    return _one_line(text) if text else type(exc).__name__


def _render_body(tree: Any, values: dict[str, Any]) -> Any:
    """A webhook body template filled in: a string that is exactly ``{name}`` becomes
    the value itself (a number stays a number, a missing value is ``null``); in longer
    strings a missing value is empty text, not ``None``."""
    if isinstance(tree, str):
        template = Template(tree)
        if template.is_static:
            return tree
        if len(template.fields) == 1 and tree == f"{{{template.fields[0]}}}":
            return values[template.fields[0]]
        return template.render(values, quote=lambda v: "" if v is None else str(v))
    if isinstance(tree, dict):
        return {key: _render_body(value, values) for key, value in tree.items()}
    if isinstance(tree, list):
        return [_render_body(value, values) for value in tree]
    return tree


# -- redaction ------------------------------------------------------------------------------
def _scrubber(config: AlertConfig, redact: Redactor) -> Callable[[str], str]:
    """``redact``, plus the alert's own secrets: URL passwords (and the Basic credential
    aiohttp makes of a webhook's) and credential headers are masked even when the config
    loader did not register them (written inline, not ``${ENV}``), and even where Apprise
    logs them decoded."""
    secrets: list[str] = []
    for url in [*config.urls, *([config.webhook.url] if config.webhook else [])]:
        try:
            parts = urlsplit(url)
            user, password = parts.username, parts.password
        except ValueError:
            continue
        if password:
            secrets += [password, unquote(password)]
            basic = f"{unquote(user or '')}:{unquote(password)}".encode("latin-1", "replace")
            secrets.append(base64.b64encode(basic).decode())
    if config.webhook is not None:
        secrets += [v for k, v in config.webhook.headers.items() if _SECRET_HEADER.search(k)]
    own = Redactor(secrets)
    return lambda text: redact(own(text))
