"""The house's floors: every import points down, and nothing below imports the CLI.

    podium.cli                    the command line (top floor; nothing imports it)
    podium, podium.testing        the public API and the test helpers
    podium.jobs                   the scheduler daemon
    podium.orchestrator           runs a pipeline; inside it, from the top:
        (package root, _run)
        engine, notify            stage tasks, streams, counters, the run's record;
                                  delivering alert notifications (the outbox dispatcher)
        http, storage             the gateway and transports; database, tables, journal
        config, _redact, _logging loading config.toml; masking; log sinks
        alerts                    what alerts are: models, rules, the incident state machine
    podium.connectors             what an API is: no I/O
    podium.pipeline               the pure model

The test reads every module's source (``ast``), resolves relative imports, and checks
each against this order. Imports under ``if TYPE_CHECKING:`` are exempt: they exist for
the type checker only and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folder in the repository → the module name it installs as (pyproject's package-dir).
FOLDERS = {
    "podium": "podium",
    "pipeline": "podium.pipeline",
    "connectors": "podium.connectors",
    "orchestrator": "podium.orchestrator",
    "jobs": "podium.jobs",
}
# Longest matching prefix wins; a higher number is a higher floor. A module imports only
# from strictly lower floors (or from inside its own part): parts on one floor never import
# each other, so no cycle can form between them.
FLOORS = {
    "podium.pipeline": 0,
    "podium.connectors": 1,
    "podium.orchestrator.alerts": 1.5,
    "podium.orchestrator._redact": 2,
    "podium.orchestrator.config": 2,
    "podium.orchestrator._logging": 2.5,
    "podium.orchestrator.storage": 3,
    "podium.orchestrator.http": 3,
    "podium.orchestrator.engine": 4,
    "podium.orchestrator.notify": 4,
    "podium.orchestrator": 5,
    "podium.jobs": 6,
    "podium": 7,
    "podium.testing": 7,
    "podium.cli": 8,
    "podium.__main__": 9,
}
# Libraries a floor must not import: the pure model and the connectors do no I/O, and
# loading a config (what `podium validate` does) must not pay for an I/O library.
FORBIDDEN = {
    "podium.pipeline": {"aiohttp", "sqlalchemy", "asyncpg", "apscheduler", "typer", "rich"},
    "podium.connectors": {"aiohttp", "sqlalchemy", "asyncpg", "apscheduler", "typer", "rich"},
    "podium.orchestrator.config": {"aiohttp", "sqlalchemy", "asyncpg", "apscheduler"},
    "podium.orchestrator.alerts": {"aiohttp", "sqlalchemy", "asyncpg", "apprise", "anyio"},
}


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


MODULES = modules()


def part_of(module: str) -> str:
    """The FLOORS key a module belongs to (its longest matching prefix)."""
    best = ""
    for prefix in FLOORS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return best


def runtime_imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import that runs, at module level or inside
    a function; those under ``if TYPE_CHECKING:`` are skipped."""
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                type_only.update(id(n) for n in ast.walk(child))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            out.append((node.lineno, base))
            # `from podium import cli` imports the module podium.cli: check it as one.
            out.extend(
                (node.lineno, f"{base}.{a.name}")
                for a in node.names
                if f"{base}.{a.name}" in MODULES
            )
    return sorted(out)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def all_imports() -> list[tuple[str, Path, int, str]]:
    rows = []
    for module, path in sorted(MODULES.items()):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for line, target in runtime_imports(tree, module, path.name == "__init__.py"):
            rows.append((module, path, line, target))
    return rows


def test_every_module_has_a_floor() -> None:
    missing = [m for m in MODULES if not part_of(m)]
    assert not missing


def runs_upward(module: str, target: str) -> bool:
    """Whether ``module`` importing ``target`` breaks the floor order."""
    if target != "podium" and not target.startswith("podium."):
        return False
    source, dest = part_of(module), part_of(target)
    if source == dest or dest == "":
        return False
    # A module inside a part may use its own package's front (e.g. engine/_x → engine).
    return FLOORS[dest] >= FLOORS[source] and not module.startswith(dest + ".")


def test_no_import_runs_upward() -> None:
    upward = [
        f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
        for module, path, line, target in all_imports()
        if runs_upward(module, target)
    ]
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_nothing_below_imports_the_command_line() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for module, path, line, target in all_imports()
        if (target == "podium.cli" or target.startswith("podium.cli."))
        and part_of(module) not in ("podium.cli", "podium.__main__")
    ]
    assert not found


def test_no_generic_top_level_import() -> None:
    """Every import of podium's own code goes through the one name, podium."""
    bare = [
        f"{path.relative_to(ROOT)}:{line}: import {target}"
        for _module, path, line, target in all_imports()
        if target.split(".")[0] in ("pipeline", "connectors", "orchestrator", "jobs")
    ]
    assert not bare


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_floors_without_io_import_no_io_library(floor: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {target}"
        for module, path, line, target in all_imports()
        if part_of(module) == floor and target.split(".")[0] in FORBIDDEN[floor]
    ]
    assert not found


def test_the_checker_catches_upward_and_sideways_imports() -> None:
    """The rules fire on real mistakes (they are not vacuous), and skip type-only imports."""
    source = "from ..orchestrator import run\nfrom .. import cli\n"
    found = [t for _, t in runtime_imports(ast.parse(source), "podium.pipeline._x", False)]
    assert found == ["podium.orchestrator", "podium", "podium.cli"]
    assert runs_upward("podium.pipeline._x", "podium.orchestrator")
    assert runs_upward("podium.connectors._base", "podium.cli._app")
    assert runs_upward("podium.orchestrator.http._gateway", "podium.orchestrator.storage")
    assert not runs_upward("podium.orchestrator.engine._fetch", "podium.orchestrator.http")
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import aiohttp\n"
    assert [t for _, t in runtime_imports(ast.parse(guarded), "podium.pipeline", True)] == [
        "typing"
    ]
