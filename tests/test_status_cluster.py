"""The status page of a cluster: three daemons on the real PostgreSQL, each asked to run
the pipeline once, and every node's page shows all three nodes and every node's runs —
it reads the shared journal, not its own memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from .alert_servers import WebhookReceiver
from .daemon_helpers import read_runs, wait_for
from .servers import items_app
from .status_helpers import BEARER, get_json, post, start_with_token, status_config
from .test_daemon_postgres import stop_all

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]
NODES = ("node-a", "node-b", "node-c")


async def test_every_node_shows_the_whole_cluster(
    serve: Callable[..., object], tmp_path: Path, postgres_url: str
) -> None:
    app, _seen = items_app(pages=3)
    base = await serve(app)
    receiver = WebhookReceiver()
    scheduler_url = postgres_url.replace("postgresql://", "postgresql+asyncpg://")
    config = status_config(
        tmp_path,
        base,
        await serve(receiver.app()),
        database=postgres_url,
        scheduler=f'url = "{scheduler_url}"\ngrace = "2s"\n',
    )
    daemons = [await start_with_token(config, node) for node in NODES]
    try:
        roots = {}
        for daemon in daemons:
            info = await daemon.wait_ready()
            roots[daemon.node_id] = f"http://127.0.0.1:{info['port']}"
        # A trigger runs on the node it is sent to: one run of orders on each node, one
        # after the other (orders allows one run at a time, cluster-wide).
        started: dict[str, str] = {}
        for node, root in roots.items():
            run_id = (await post(root, "/api/pipelines/orders/trigger", {}))["run_id"]
            started[node] = run_id

            def finished(run_id: str = run_id) -> bool:
                return any(
                    r.id == run_id and r.status == "ok" for r in read_runs(postgres_url, "orders")
                )

            await wait_for(finished, 20, what=f"the run of orders on {node}")
        runs = {r.id: r for r in read_runs(postgres_url, "orders")}
        assert {runs[started[n]].node for n in NODES} == set(NODES)

        for node, root in roots.items():
            doc = await get_json(root, "/.json")
            assert doc["node"] == node
            listed = {n["node_id"]: n for n in doc["nodes"]}
            assert set(listed) == set(NODES), (node, listed)
            assert {n["state"] for n in listed.values()} == {"up"}
            assert all(listed[n]["runs_24h"] >= 1 for n in NODES)
            latest = {r["id"]: r["node"] for r in doc["latest_runs"]}
            assert {started[n]: n for n in NODES}.items() <= latest.items()
            orders = next(p for p in doc["pipelines"] if p["name"] == "orders")
            assert {r["id"] for r in orders["recent"]} >= set(started.values())
            monitor = next(p for p in doc["monitors"] if p["name"] == "api_up")
            # The scheduler's data store is shared: any node knows the next fire.
            assert monitor["next_fire"] is not None and monitor["next_fire_from"] == "scheduler"

            page = await get_json(root, "/pipelines/orders.json")
            assert {r["node"] for r in page["runs"]["rows"]} == set(NODES)

            async with aiohttp.ClientSession() as http, http.get(root + "/",
                headers={**BEARER, "Accept": "text/html"}) as resp:  # fmt: skip
                assert resp.status == 200
                html = await resp.text()
            for other in NODES:
                assert f'data-node="{other}"' in html
                assert f'data-run="{started[other]}"' in html
        await stop_all(*daemons)
    finally:
        for daemon in daemons:
            await daemon.aclose()
