"""podium installs one import name, ``podium``, and nothing generic beside it.

The wheel is built from this checkout exactly as ``pip install .`` builds it, then
installed into a scratch folder and imported from a neutral directory — so neither the
repository's folders nor the development install can stand in for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERIC = ("pipeline", "connectors", "orchestrator", "jobs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    [path] = out.glob("podium-*.whl")
    return path


def test_the_wheel_holds_podium_and_nothing_generic(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"podium"}
    for expected in (
        "podium/py.typed",
        "podium/pipeline/_stages.py",
        "podium/connectors/_base.py",
        "podium/orchestrator/engine/_runner.py",
        "podium/orchestrator/http/_transport.py",
        "podium/jobs/_daemon.py",
        "podium/cli/_run.py",
        "podium/testing.py",
        # The status page reads its templates and stylesheet from the package.
        "podium/jobs/web/_pages.py",
        "podium/jobs/web/static/podium.css",
    ):
        assert expected in names
    templates = ROOT / "jobs" / "web" / "templates"
    for template in sorted(templates.glob("*.html")):
        assert f"podium/jobs/web/templates/{template.name}" in names, f"{template.name} is missing"
    # Every package folder of the checkout made it in (pyproject lists them one by one).
    for folder, package in [("podium", "podium"), *((g, f"podium/{g}") for g in GENERIC)]:
        for init in (ROOT / folder).rglob("__init__.py"):
            inside = init.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{inside}" in names, f"{folder}/{inside} is not packaged"


def test_installed_it_imports_as_podium_only(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    neutral = tmp_path / "elsewhere"
    neutral.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}

    def python(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code], cwd=neutral, env=env,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    ok = python(
        "import podium, podium.connectors, podium.testing\n"
        "print(podium.__file__)\n"
        "print(podium.Connector.__module__, podium.PodiumError.__module__)\n"
    )
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith(str(target))
    assert lines[1] == "podium.connectors._base podium"
    assert ok.stderr == ""  # importing podium prints nothing
    # The status page renders from the installed wheel's templates, not the checkout's.
    page = python(
        "from podium.jobs.web import StatusPages, Sources\n"
        "pages = StatusPages(Sources(None, None, 'n'))\n"
        "t = pages.env.get_template('problem.html')\n"
        "print(t.filename)\n"
        "print(len(pages.static['podium.css']) > 1000)\n"
        "print(t.render(status=404, message='<x>', now=__import__('datetime').datetime.now(),"
        " page='problem', refresh=0, can_write=False, signed_in=False, here='/', error=None,"
        " doc={'node': 'n'}).count('&lt;x&gt;'))\n"
    )
    assert page.returncode == 0, page.stderr
    filename, css, escaped = page.stdout.splitlines()
    assert filename.startswith(str(target)) and css == "True" and escaped == "1"
    for name in GENERIC:
        missing = python(f"import {name}")
        assert missing.returncode != 0
        assert f"No module named '{name}'" in missing.stderr


def test_the_development_install_is_podium_only_too(tmp_path: Path) -> None:
    """The editable install maps the same folders: outside the checkout, no generic name."""
    for name in GENERIC:
        missing = subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert f"No module named '{name}'" in missing.stderr
    here = subprocess.run(
        [sys.executable, "-c", "import podium.pipeline as p; print(p.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert here.stdout.strip() == str(ROOT / "pipeline" / "__init__.py")
