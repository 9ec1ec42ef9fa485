"""How the CLI finds running daemons: one small JSON file per node, beside the config.

``<config dir>/<runtime_dir>/daemon-<node id>.json`` holds the pid, node id and the
endpoint's address; the daemon writes it once its endpoint listens and removes it on
exit. ``podium reload`` sends SIGHUP to each live pid; ``podium status`` reads /status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tomllib
from pathlib import Path
from typing import Any

import orjson

from pipeline import PodiumError

DEFAULT_RUNTIME_DIR = ".podium"


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


def runtime_file(directory: Path, node_id: str) -> Path:
    return directory / f"daemon-{node_id}.json"


def write_runtime(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(info))
    tmp.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_daemons(config_path: Path, node_id: str | None = None) -> list[dict[str, Any]]:
    """The daemons running for ``config_path`` (stale files of dead pids are ignored)."""
    directory = runtime_dir(config_path)
    found: list[dict[str, Any]] = []
    for path in sorted(directory.glob("daemon-*.json")):
        try:
            info = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            continue
        if node_id is not None and info.get("node_id") != node_id:
            continue
        if _alive(int(info.get("pid", 0))):
            found.append(info)
    if not found:
        which = f"node {node_id!r}" if node_id else "any node"
        raise PodiumError(
            f"no running daemon for {which} of {config_path} (looked in {directory}; "
            f"start one with: podium daemon --config {config_path})"
        )
    return found


def reload_daemons(config_path: Path, node_id: str | None = None) -> list[dict[str, Any]]:
    """Send SIGHUP to each live daemon of ``config_path``; the ones signalled."""
    daemons = live_daemons(config_path, node_id)
    for info in daemons:
        os.kill(int(info["pid"]), signal.SIGHUP)
    return daemons


async def fetch_statuses(config_path: Path, node_id: str | None = None) -> list[dict[str, Any]]:
    """Each live daemon's /status document."""
    import aiohttp

    out: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for info in live_daemons(config_path, node_id):
            url = f"http://{info['host']}:{info['port']}/status"
            try:
                async with session.get(url) as response:
                    response.raise_for_status()
                    out.append(await response.json())
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise PodiumError(
                    f"daemon {info['node_id']!r} at {url} did not answer: {exc}"
                ) from None
    return out
