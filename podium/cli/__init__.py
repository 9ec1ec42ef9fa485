"""The ``podium`` command line: the top floor of the house. Nothing in podium imports it.

One module per command group; each imports only typer at module level and the stack it
needs inside its commands, so ``podium --help`` loads none of podium's engine. Commands
are listed in the order their modules register them: the everyday ones first.
"""

from __future__ import annotations

import gc

from . import _run  # noqa: F401  (registers its commands)

# isort: split
from . import _history  # noqa: F401

# isort: split
from . import _checks  # noqa: F401

# isort: split
from . import _alerts  # noqa: F401

# isort: split
from . import _dead_letters  # noqa: F401

# isort: split
from . import _state  # noqa: F401

# isort: split
from . import _connectors, _daemon  # noqa: F401

# isort: split
from . import _operate  # noqa: F401
from ._app import app


def main() -> None:
    # What start-up imported lives as long as the process: freeze it out of the cyclic
    # collector's scans. Records are acyclic dicts freed by reference counting, so the
    # collector may run far less often than its default of every 700 allocations.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    app()


__all__ = ["app", "main"]
