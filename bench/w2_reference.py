"""W2 reference: raw aiohttp + sqlite3 following a 500-page next-URL chain, one page at a time.

    python bench/w2_reference.py --url http://127.0.0.1:PORT --db /path/to/w2.db

Each page holds 20 records and, except the last, the URL of the next page ("next", relative
to the page). Nothing can overlap: the next request is only known once a page is parsed, so
this is the latency of one loop over one ClientSession plus 10,000 upserts. The transform and
the store (batches of 5,000 rows, WAL) are W1's, imported from w1_reference.py so both
workloads measure podium against the very same code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from urllib.parse import urljoin

import aiohttp
import orjson
from w1_reference import Store, transform  # the script's folder is on sys.path

FIRST_PAGE = "/chain/0"


async def run(base_url: str, db_path: str) -> int:
    store = Store(db_path)
    try:
        url: str | None = f"{base_url}{FIRST_PAGE}"
        async with aiohttp.ClientSession() as session:
            while url is not None:
                async with session.get(url) as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                payload = orjson.loads(body)
                store.add([transform(item) for item in payload["items"]])
                link = payload.get("next")
                url = urljoin(url, link) if link else None
        store.flush()
        return store.count()
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="W2 reference: raw aiohttp + sqlite3")
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:43123")
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.url.rstrip("/"), args.db))
    print(f"rows {rows}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
