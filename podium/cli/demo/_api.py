"""A small bundled weather/air-quality API, so the demo pipeline runs with no internet.

It answers like the real services the real-world examples use, over real HTTP on
loopback: ``/cities``, ``/weather/{id}`` (bearer token required), and ``/air?city=ID``
(API key in a header), with values that change over time so each run updates rows —
and, for the monitoring example, ``/health``, ``/chaos`` and a ``/webhook`` sink (``_ops``).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from aiohttp import web

from ._ops import add_ops_routes

CITIES = [
    ("ams", "Amsterdam", "NL", 52.37, 4.90), ("ath", "Athens", "GR", 37.98, 23.73),
    ("bcn", "Barcelona", "ES", 41.39, 2.17), ("ber", "Berlin", "DE", 52.52, 13.40),
    ("bru", "Brussels", "BE", 50.85, 4.35), ("bud", "Budapest", "HU", 47.50, 19.04),
    ("cph", "Copenhagen", "DK", 55.68, 12.57), ("dub", "Dublin", "IE", 53.35, -6.26),
    ("edi", "Edinburgh", "GB", 55.95, -3.19), ("fra", "Frankfurt", "DE", 50.11, 8.68),
    ("gva", "Geneva", "CH", 46.20, 6.14), ("hel", "Helsinki", "FI", 60.17, 24.94),
    ("ist", "Istanbul", "TR", 41.01, 28.98), ("krk", "Krakow", "PL", 50.06, 19.94),
    ("lis", "Lisbon", "PT", 38.72, -9.14), ("lon", "London", "GB", 51.51, -0.13),
    ("lyo", "Lyon", "FR", 45.76, 4.84), ("mad", "Madrid", "ES", 40.42, -3.70),
    ("mil", "Milan", "IT", 45.46, 9.19), ("mun", "Munich", "DE", 48.14, 11.58),
    ("nap", "Naples", "IT", 40.85, 14.27), ("osl", "Oslo", "NO", 59.91, 10.75),
    ("par", "Paris", "FR", 48.86, 2.35), ("prg", "Prague", "CZ", 50.08, 14.44),
    ("rey", "Reykjavik", "IS", 64.15, -21.94), ("rig", "Riga", "LV", 56.95, 24.11),
    ("rom", "Rome", "IT", 41.90, 12.50), ("rot", "Rotterdam", "NL", 51.92, 4.48),
    ("sev", "Seville", "ES", 37.39, -5.98), ("sof", "Sofia", "BG", 42.70, 23.32),
    ("sto", "Stockholm", "SE", 59.33, 18.07), ("tal", "Tallinn", "EE", 59.44, 24.75),
    ("the", "Thessaloniki", "GR", 40.64, 22.94), ("val", "Valencia", "ES", 39.47, -0.38),
    ("vie", "Vienna", "AT", 48.21, 16.37), ("vil", "Vilnius", "LT", 54.69, 25.28),
    ("war", "Warsaw", "PL", 52.23, 21.01), ("zag", "Zagreb", "HR", 45.81, 15.98),
    ("zrh", "Zurich", "CH", 47.37, 8.54), ("por", "Porto", "PT", 41.15, -8.61),
]  # fmt: skip
DEMO_TOKEN = "demo-token"
# Where `podium demo-api` listens, and the demo connectors' base_url when
# PODIUM_DEMO_URL is not set (config.toml).
DEFAULT_DEMO_URL = "http://127.0.0.1:8765"
DEMO_API_KEY = "demo-key"


def _wave(seed: float, period: float) -> float:
    return math.sin(time.time() / period + seed)


async def cities(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "cities": [
                {"id": c[0], "name": c[1], "country": c[2], "lat": c[3], "lon": c[4]}
                for c in CITIES
            ]
        }
    )


async def weather(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {DEMO_TOKEN}":
        return web.json_response({"error": "unauthorized"}, status=401)
    city = next((c for c in CITIES if c[0] == request.match_info["city"]), None)
    if city is None:
        return web.json_response({"error": "no such city"}, status=404)
    lat = city[3]
    return web.json_response(
        {
            "city": city[0],
            "observed_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "current": {
                "temperature_c": round(28 - lat * 0.35 + 4 * _wave(lat, 300), 1),
                "wind_kmh": round(12 + 8 * abs(_wave(lat * 2, 200)), 1),
                "humidity": int(60 + 25 * _wave(lat * 3, 500)),
            },
        }
    )


async def air(request: web.Request) -> web.Response:
    if request.headers.get("X-Api-Key") != DEMO_API_KEY:
        return web.json_response({"error": "bad api key"}, status=403)
    city = next((c for c in CITIES if c[0] == request.query.get("city")), None)
    if city is None:
        return web.json_response({"error": "no such city"}, status=404)
    lon = city[4]
    return web.json_response(
        {"data": {"city": city[0], "pm25": round(9 + 6 * abs(_wave(lon, 250)), 1),
                  "pm10": round(16 + 9 * abs(_wave(lon, 350)), 1),
                  "aqi": int(25 + 30 * abs(_wave(lon, 400)))}}
    )  # fmt: skip


def demo_app() -> web.Application:
    app = web.Application()
    app.add_routes(
        [web.get("/cities", cities), web.get("/weather/{city}", weather), web.get("/air", air)]
    )
    add_ops_routes(app)
    return app
