"""How the CLI finds running daemons, and how a node id is held by one daemon at a time.

Beside the config, in ``<config dir>/<runtime_dir>/``, each node has two files:

``daemon-<node id>.lock``
    Held with an exclusive ``flock`` for the daemon's whole life, taken before it touches
    the run table. A second daemon with the same node id cannot take it and refuses to
    start; the kernel releases it when the holder dies, even by ``kill -9``, so a restart
    needs no clean-up. The file itself stays (deleting a lock file others may have open
    lets two holders in).
``daemon-<node id>.json``
    The pid, node id, endpoint address and a random ``instance`` token; written once the
    endpoint listens, removed on exit, left behind by ``kill -9``.

The runtime file is only a hint. ``podium reload`` and ``podium status`` trust a daemon
only after its endpoint answers ``/status`` with the same node id and instance token; a
file whose endpoint refuses the connection or answers as someone else is stale and is
removed. One whose endpoint answers 401 or 403 (the command line's token is wrong or
missing) or a server error stays: a daemon may well live there, and removing its file would
hide it from every command. ``/status`` is asked with the config's ``read_token``, else its
``token``, else the token the daemon keeps in its runtime file. Nothing here sends a
signal: a pid read from a file may have been reused by any process since.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import secrets
import tomllib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from podium.pipeline import NodeIdInUse, PodiumError

DEFAULT_RUNTIME_DIR = ".podium"
STATUS_TIMEOUT = 5.0  # seconds for /status to answer
RELOAD_TIMEOUT = 60.0  # a reload reconciles schedules, possibly in PostgreSQL


def runtime_dir(config_path: Path, configured: str | None = None) -> Path:
    """Where the daemon files live; read from the raw TOML so a broken config still works."""
    if configured is None:
        configured = DEFAULT_RUNTIME_DIR
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            raw = tomllib.loads(config_path.read_text(encoding="utf-8"))
            value = raw.get("scheduler", {}).get("runtime_dir")
            if isinstance(value, str):
                configured = value
    return (config_path.parent / configured).resolve()


@dataclass(frozen=True)
class ConfigTokens:
    """The endpoint tokens a config gives the command line (``${ENV}`` resolved)."""

    write: str | None = None
    read: str | None = None


def config_tokens(config_path: Path) -> ConfigTokens:
    """``[scheduler] token`` and ``read_token``, read on their own: a reload must work
    with a config whose other parts are invalid. A file that is not TOML at all raises
    the ConfigError ``podium validate`` gives — sending no token would only earn a 401
    that hides the real mistake."""
    from podium.orchestrator.config import interpolate, read_toml

    raw = read_toml(Path(config_path))
    table = raw.get("scheduler")
    table = table if isinstance(table, dict) else {}

    def one(key: str) -> str | None:
        value = table.get(key)
        if not isinstance(value, str):
            return None
        token = interpolate(value, os.environ, f"scheduler.{key}")
        return str(token) if token else None

    return ConfigTokens(write=one("token"), read=one("read_token"))


def config_token(config_path: Path) -> str | None:
    """``[scheduler] token`` of the config (see ``config_tokens``), None when not set."""
    return config_tokens(config_path).write


def runtime_file(directory: Path, node_id: str) -> Path:
    return directory / f"daemon-{node_id}.json"


def lock_file(directory: Path, node_id: str) -> Path:
    return directory / f"daemon-{node_id}.lock"


def new_instance() -> str:
    """A token naming one daemon process's life; its endpoint echoes it in /status."""
    return secrets.token_hex(8)


def write_runtime(path: Path, info: dict[str, Any]) -> None:
    """Write the runtime file atomically, readable by its owner only: it may hold the
    daemon's own write token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(orjson.dumps(info))
    os.chmod(tmp, 0o600)  # an existing .tmp keeps its old mode through O_CREAT
    tmp.replace(path)


@contextlib.contextmanager
def hold_node(directory: Path, node_id: str) -> Iterator[Path]:
    """Hold ``node_id``'s lock for the block; NodeIdInUse if a live daemon holds it."""
    path = lock_file(directory, node_id)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise PodiumError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise NodeIdInUse(
                f"node {node_id!r} is already running{pid} (it holds {path}); "
                "stop it first, or give this daemon another --node-id"
            ) from None
        except OSError as exc:
            raise PodiumError(f"cannot lock {path}: {exc.strerror}") from None
        # For the message above only: the lock, not this pid, is what counts.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock (the kernel does the same on kill -9)


@dataclass
class _Survey:
    """What the runtime files of one config lead to."""

    directory: Path
    live: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # info, /status
    removed: int = 0
    problems: list[str] = field(default_factory=list)


def read_runtime_files(directory: Path) -> list[dict[str, Any]]:
    """What the runtime files in ``directory`` say (hints only: any may be stale)."""
    found = []
    for path in sorted(directory.glob("daemon-*.json")):
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            info = orjson.loads(path.read_bytes())
            if isinstance(info, dict):
                found.append(info)
    return found


def _base_url(info: dict[str, Any]) -> str:
    host = str(info.get("host") or "127.0.0.1")
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(info['port'])}"


def _remove_if_unchanged(path: Path, seen: bytes) -> bool:
    """Remove a stale runtime file unless a new daemon has rewritten it meanwhile."""
    try:
        if path.read_bytes() != seen:
            return False
        path.unlink()
    except OSError:
        return False
    return True


async def _survey(session: Any, config_path: Path, node_id: str | None) -> _Survey:
    import aiohttp

    survey = _Survey(runtime_dir(config_path))
    tokens = config_tokens(config_path)
    for path in sorted(survey.directory.glob("daemon-*.json")):
        try:
            raw = path.read_bytes()
            info = orjson.loads(raw)
            name, instance, url = str(info["node_id"]), str(info["instance"]), _base_url(info)
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue  # not a runtime file this version wrote: leave it alone
        if node_id is not None and name != node_id:
            continue
        bearer = tokens.read or tokens.write or info.get("token")
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        try:
            timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT)
            async with session.get(f"{url}/status", timeout=timeout, headers=headers) as response:
                status = response.status
                doc = await response.json() if status == 200 else None
        except TimeoutError:  # first: aiohttp's timeouts are connection errors too
            survey.problems.append(
                f"node {name!r} at {url} did not answer within {STATUS_TIMEOUT:g}s"
            )
            continue  # perhaps alive but busy: neither trusted nor removed
        except (aiohttp.ClientConnectionError, OSError):
            status, doc = None, None  # nothing listens there any more: the daemon is gone
        except (aiohttp.ClientError, ValueError):
            status, doc = None, None  # something answered, but not a daemon's /status
        if isinstance(doc, dict) and doc.get("node_id") == name and doc.get("instance") == instance:
            survey.live.append((info, doc))
        elif status in (401, 403):
            # A live endpoint that wants a credential: the daemon runs, our token is wrong.
            which = "wrong" if bearer else "missing"
            survey.problems.append(
                f"node {name!r} at {url} refused /status (HTTP {status}): the token is {which}"
                " — set [scheduler] read_token or token to the daemon's"
            )
        elif status is not None and status >= 500:
            # Perhaps the daemon, failing: neither trusted nor removed.
            survey.problems.append(
                f"node {name!r} at {url} answered /status with HTTP {status}; see its log"
            )
        elif _remove_if_unchanged(path, raw):  # gone, not a daemon, or another daemon
            survey.removed += 1
    return survey


def _not_running(config_path: Path, node_id: str | None, survey: _Survey) -> PodiumError:
    which = f"node {node_id!r} is not running" if node_id else "no daemon is running"
    stale = f"; removed {survey.removed} stale runtime file(s)" if survey.removed else ""
    again = f" --node-id {node_id}" if node_id else ""
    return PodiumError(
        f"{which} for {config_path} (looked in {survey.directory}{stale}; "
        f"start one with: podium daemon --config {config_path}{again})"
    )


def _session(timeout: float) -> Any:
    import aiohttp

    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))


async def live_daemons(config_path: Path, node_id: str | None = None) -> list[dict[str, Any]]:
    """The daemons of ``config_path`` whose endpoints answer as themselves (their /status)."""
    async with _session(STATUS_TIMEOUT) as session:
        survey = await _survey(session, Path(config_path), node_id)
    if survey.problems:
        raise PodiumError("; ".join(survey.problems))
    if not survey.live:
        raise _not_running(Path(config_path), node_id, survey)
    return [doc for _info, doc in survey.live]


async def request_reload(
    config_path: Path, node_id: str | None = None, token: str | None = None
) -> list[dict[str, Any]]:
    """``POST /reload`` to each verified daemon of ``config_path``; the ones that reloaded.

    Any daemon that did not answer or rejected the new config makes this raise one
    PodiumError naming them all, after the others have reloaded.
    """
    import aiohttp

    config_path = Path(config_path)
    done: list[dict[str, Any]] = []
    async with _session(RELOAD_TIMEOUT) as session:
        survey = await _survey(session, config_path, node_id)
        if not survey.live and not survey.problems:
            raise _not_running(config_path, node_id, survey)
        problems = survey.problems
        for info, doc in survey.live:
            name, url = doc["node_id"], f"{_base_url(info)}/reload"
            bearer = token or info.get("token")
            headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
            try:
                params = {"instance": info["instance"]}
                async with session.post(url, params=params, headers=headers) as response:
                    answer = await response.json()
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                problems.append(f"node {name!r} at {url} did not answer ({type(exc).__name__})")
                continue
            if isinstance(answer, dict) and answer.get("reloaded") is True:
                done.append({**doc, "pid": doc.get("pid", info.get("pid"))})
            else:
                reason = answer.get("error") if isinstance(answer, dict) else None
                problems.append(f"node {name!r} rejected the reload: {reason or 'see its log'}")
    if problems:
        if done:
            problems.append("reloaded: " + ", ".join(repr(d["node_id"]) for d in done))
        raise PodiumError("; ".join(problems))
    return done


def reload_daemons(
    config_path: Path, node_id: str | None = None, token: str | None = None
) -> list[dict[str, Any]]:
    """``request_reload`` for synchronous callers (the CLI): the daemons that reloaded."""
    import anyio

    return anyio.run(
        functools.partial(request_reload, config_path, node_id, token), backend="asyncio"
    )


@dataclass(frozen=True)
class DaemonCall:
    """What a daemon answered to a control request."""

    status: int
    answer: dict[str, Any]
    node_id: str
    base_url: str
    token: str | None


async def call_daemon(
    config_path: Path,
    path: str,
    body: dict[str, Any],
    *,
    token: str | None,
    node_id: str | None = None,
) -> DaemonCall:
    """``POST path`` with ``body`` to a verified daemon of ``config_path`` (the first, or
    ``node_id``), with ``token`` — else the token the daemon keeps in its runtime file
    when none is configured. Raises PodiumError when no daemon answers."""
    import aiohttp

    config_path = Path(config_path)
    async with _session(RELOAD_TIMEOUT) as session:
        survey = await _survey(session, config_path, node_id)
        if not survey.live:
            if survey.problems:
                raise PodiumError("; ".join(survey.problems))
            raise _not_running(config_path, node_id, survey)
        info, doc = survey.live[0]
        base = _base_url(info)
        bearer = token or info.get("token")
        headers = {"User-Agent": "podium-cli"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            async with session.post(f"{base}{path}", json=body, headers=headers) as response:
                status = response.status
                try:
                    answer = await response.json(content_type=None)
                except ValueError:  # a crash's plain-text 500, say: the status says enough
                    answer = {"error": f"HTTP {status} without an answer; see the daemon's log"}
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise PodiumError(
                f"node {doc['node_id']!r} at {base} did not answer ({type(exc).__name__})"
            ) from None
    if not isinstance(answer, dict):
        answer = {"error": "the daemon's answer was not a JSON object"}
    return DaemonCall(status, answer, str(doc["node_id"]), base, bearer)


async def follow_progress(call: DaemonCall, run_id: str) -> AsyncIterator[dict[str, Any]]:
    """The run's progress lines from the daemon that started it, to its end."""
    import aiohttp

    headers = {"Authorization": f"Bearer {call.token}"} if call.token else {}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{call.base_url}/api/runs/{run_id}/progress", headers=headers) as response,
        ):
            if response.status != 200:
                raise PodiumError(
                    f"the daemon refused the progress of run {run_id}: {response.status}"
                )
            async for line in response.content:
                if line.strip():
                    yield orjson.loads(line)
    except (aiohttp.ClientError, TimeoutError, OSError, orjson.JSONDecodeError):
        # The daemon stopped (or was killed) mid-run: the run's outcome is in the journal.
        raise PodiumError(
            f"lost node {call.node_id!r} while following run {run_id}; see: podium show {run_id}"
        ) from None


async def fetch_statuses(config_path: Path, node_id: str | None = None) -> list[dict[str, Any]]:
    """Each verified daemon's /status document."""
    return await live_daemons(config_path, node_id)
