"""``podium runs`` with filters: a filter that matches nothing says so, an unknown
pipeline or trigger is one line and exit 2, and --help lists the real triggers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .daemon_helpers import daemon_config, pipeline_toml, podium_cli
from .servers import items_app

pytestmark = pytest.mark.anyio


async def cli(*args: str) -> tuple[int, str, str]:
    return await podium_cli(*args, wide=True)  # tables unwrapped, one row a line


async def test_runs_filters_say_what_matched(serve: Callable[..., object], tmp_path: Path) -> None:
    app, _seen = items_app(pages=1)
    base = await serve(app)
    config = daemon_config(
        tmp_path,
        base,
        pipelines=pipeline_toml("sync", '{ interval = "1h" }'),
    )
    args = ("--config", str(config))
    code, _, err = await cli("run", "sync", *args)
    assert code == 0, err

    code, out, err = await cli("runs", "nope", *args)
    assert code == 2 and out == "" and "no pipeline 'nope'" in err, (out, err)
    code, out, err = await cli("runs", "--trigger", "bogus", *args)
    assert code == 2 and "--trigger bogus is not a trigger" in err and "schedule" in err, err
    for filters in (("--status", "cancelled"), ("--trigger", "schedule")):
        code, out, err = await cli("runs", *filters, *args)
        assert code == 0, err
        assert "no runs match" in out and "yet" not in out, out
    code, out, _ = await cli("runs", "--trigger", "cli", *args)
    assert code == 0 and "sync" in out

    code, out, _ = await cli("runs", "--help")
    words = " ".join(out.split())
    assert "schedule" in words and "daemon" not in words, out
