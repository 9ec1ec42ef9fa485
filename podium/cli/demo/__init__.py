"""The bundled demo API, so the demo pipeline runs with no internet."""

from ._api import DEFAULT_DEMO_URL, DEMO_API_KEY, DEMO_TOKEN, demo_app
from ._server import serve_demo_api

__all__ = ["DEFAULT_DEMO_URL", "DEMO_API_KEY", "DEMO_TOKEN", "demo_app", "serve_demo_api"]
