"""Start-up benchmark: what podium's short commands cost as whole processes, and where it goes.

    .venv/bin/python bench/startup.py [--repeat 7]

A one-off `podium run` or a `podium validate` in CI pays interpreter start-up and imports every
time, so this is what a user waits for on each call. Four commands, each a child process
measured as W1's contenders are (bench/_harness.py: wall from spawn to exit, user+sys CPU and
peak RSS of that child alone from wait4):

1. `python -c 'import aiohttp'`: the yardstick, measured in the same run. Nothing that makes
   an HTTP request with aiohttp can start faster, so the ratios say how much podium adds.
2. `podium --help`
3. `podium validate --config <tmp>/config.toml`: one http connector, one fetch → store pipeline
4. `podium run one --config <tmp>/config.toml`: one GET of `{"items": [{"id": 1}]}` from the
   bench server (its own process, as in W1) stored into a fresh SQLite file, verified after.

Rounds are interleaved (each round runs every command once, starting one command later than
the round before), after one warm-up round that is not counted, so noise from the shared
machine falls on all commands alike; the figures are medians. Targets from the issue, on the
median wall time: --help ≤ 0.25 s, validate ≤ 0.6 s, one-request run ≤ 0.8 s.

Then each podium command runs once more as `python -X importtime -m podium ...` and its
imports are itemised by top-level package (podium by subpackage): the exclusive time of each
package's own modules (these add up to the total), the inclusive time of its outermost
imports (with whatever it pulled in) and which module first imported it — the list to work
from when a target is missed. importtime itself inflates the figures somewhat.

Appends a section to bench/RESULTS.md and writes bench/results/startup-latest.json.
Exit status: 0 every target met; 1 a target missed; 2 a command, the server or the
verification failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The harness sits next to this file; also found when run with -m or from another folder.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
from _harness import ROOT, Sample

RESULTS_JSON = _harness.RESULTS_DIR / "startup-latest.json"
TOP_N = 10
TIMEOUT = 60.0

CONFIG = """\
# Written by bench/startup.py: the smallest useful config, one connector, one pipeline.
[database]
url = "sqlite:///${STARTUP_DB}"

[connectors.api]
kind = "http"
base_url = "${STARTUP_URL}"

[pipelines.one]
description = "start-up benchmark: one GET, one record, stored"

[[pipelines.one.stages]]
name = "items"
kind = "fetch"
connector = "api"
path = "/one"
records = "items"

[[pipelines.one.stages]]
name = "save"
kind = "store"
table = "items"
key = ["id"]
"""


@dataclass
class Command:
    name: str  # as shown in the table
    argv: list[str]  # "{config}" is replaced by the config's path
    target_s: float | None  # median wall time, from the issue; None for the yardstick
    importtime_argv: list[str] | None = None  # the same command under python -X importtime
    stores: bool = False  # writes one row: verify it, fresh database each run
    samples: list[StartupRun] = field(default_factory=list)
    status: str = "ok"
    imports: dict[str, Any] | None = None

    def ok_samples(self) -> list[StartupRun]:
        return [s for s in self.samples if s.ok]

    def medians(self) -> dict[str, float] | None:
        ok = self.ok_samples()
        if not ok:
            return None
        return {m: statistics.median(getattr(s, m) for s in ok) for m in _harness.METRICS}


@dataclass(kw_only=True)
class StartupRun(Sample):
    command: str
    round: int  # -1 = warm-up, not counted
    verified: bool = True

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.verified


def make_commands(podium: Path) -> list[Command]:
    python = sys.executable  # the venv's, the one the podium script runs on
    podium_args = {
        "podium --help": ["--help"],
        "podium validate": ["validate", "--config", "{config}"],
        "podium run (1 request)": ["run", "one", "--config", "{config}"],
    }
    targets = {"podium --help": 0.25, "podium validate": 0.6, "podium run (1 request)": 0.8}
    commands = [Command("python -c 'import aiohttp'", [python, "-c", "import aiohttp"], None)]
    for name, args in podium_args.items():
        commands.append(
            Command(
                name,
                [str(podium), *args],
                targets[name],
                importtime_argv=[python, "-X", "importtime", "-m", "podium", *args],
                stores=args[0] == "run",
            )
        )
    return commands


def verify_one(db: Path) -> str:
    """ "" if the one-request run stored exactly the one record the server sent."""
    if not db.exists():
        return f"{db.name} was not created"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id FROM items").fetchall()
    except sqlite3.Error as exc:
        return f"cannot read items: {exc}"
    finally:
        conn.close()
    return "" if rows == [(1,)] else f"items holds {rows!r}, expected [(1,)]"


def run_once(
    cmd: Command, round_no: int, config: Path, url: str, workdir: Path, seq: int
) -> StartupRun:
    db = workdir / f"run-{seq}.db"  # a fresh file per run: every run creates its tables
    env = _harness.child_env(STARTUP_URL=url, STARTUP_DB=str(db))
    argv = [a.replace("{config}", str(config)) for a in cmd.argv]
    sample = StartupRun(command=cmd.name, round=round_no)
    # The working directory is the scratch folder: nothing a command writes lands in the tree.
    _harness.measure(argv, env, workdir / f"{seq}", TIMEOUT, sample, cwd=workdir)
    if sample.returncode == 0 and cmd.stores:
        sample.problem = verify_one(db)
        sample.verified = not sample.problem
    return sample


# ---------------------------------------------------------------------------------------------
# Where start-up goes: python -X importtime, itemised


@dataclass
class ImportLine:
    name: str
    depth: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[ImportLine]:
    lines = []
    for raw in stderr.splitlines():
        if not raw.startswith("import time:") or "[us]" in raw:
            continue
        parts = raw[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        label = parts[2]
        stripped = label.lstrip(" ")
        # One space after the bar, then two per level of nesting.
        depth = (len(label) - len(stripped) - 1) // 2
        lines.append(ImportLine(stripped.strip(), depth, int(parts[0]), int(parts[1])))
    return lines


def package_of(module: str) -> str:
    """Top-level package, except podium, which is broken down by subpackage."""
    parts = module.split(".")
    if parts[0] == "podium" and len(parts) > 1:
        return ".".join(parts[:2])
    if parts[0].startswith("__editable__"):
        return "(editable-install finder)"
    return parts[0]


def itemise(lines: list[ImportLine]) -> dict[str, Any]:
    """Per package: exclusive ms (its own modules), inclusive ms (its outermost imports,
    with what they imported) and the first module outside it that imported it."""
    self_us: dict[str, int] = defaultdict(int)
    incl_us: dict[str, int] = defaultdict(int)
    modules: dict[str, int] = defaultdict(int)
    importer: dict[str, str] = {}
    # importtime prints a module after everything it imported (post-order). Read backwards,
    # a module's parent is the last one seen one level up: keep the current path as a stack.
    stack: list[str] = []
    for line in reversed(lines):
        del stack[line.depth :]
        pkg = package_of(line.name)
        self_us[pkg] += line.self_us
        modules[pkg] += 1
        ancestors = [package_of(a) for a in stack]
        if pkg not in ancestors:
            incl_us[pkg] += line.cumulative_us
        if pkg not in ancestors:
            # Read backwards, the last outermost import seen is the first one made. Name the
            # importing module and, if that is not podium's, the podium module behind it.
            by = stack[-1] if stack else "(run time: __main__ or a function)"
            behind = [a for a in stack if a.startswith("podium.")]
            if behind and not by.startswith("podium"):
                by += f" ← {behind[-1]}"
            importer[pkg] = by
        stack.append(line.name)
    total_us = sum(self_us.values())
    packages = [
        {
            "package": pkg,
            "stdlib": pkg in sys.stdlib_module_names,
            "self_ms": self_us[pkg] / 1000,
            "inclusive_ms": incl_us[pkg] / 1000,
            "modules": modules[pkg],
            "first_imported_by": importer.get(pkg, ""),
        }
        for pkg in sorted(self_us, key=lambda p: -self_us[p])
    ]
    # podium's subpackages again as one line, for the comparison with the other packages.
    podium = [p for p in packages if p["package"].startswith("podium")]
    return {
        "total_ms": total_us / 1000,
        "modules": len(lines),
        "podium_self_ms": sum(p["self_ms"] for p in podium),
        "packages": packages,
    }


def importtime(cmd: Command, config: Path, url: str, workdir: Path) -> dict[str, Any]:
    assert cmd.importtime_argv is not None
    db = workdir / "importtime.db"
    argv = [a.replace("{config}", str(config)) for a in cmd.importtime_argv]
    env = _harness.child_env(STARTUP_URL=url, STARTUP_DB=str(db))
    proc = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-500:]}")
    db.unlink(missing_ok=True)
    return itemise(parse_importtime(proc.stderr))


# ---------------------------------------------------------------------------------------------
# Reporting


def table_lines(commands: list[Command], repeat: int) -> list[str]:
    base = commands[0].medians()
    lines = [
        "| command | wall s | CPU s | peak RSS MB | wall ÷ import aiohttp | CPU ÷ import aiohttp"
        " | target (wall) | result | runs ok |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for cmd in commands:
        med = cmd.medians()
        runs = f"{len([s for s in cmd.ok_samples() if s.round >= 0])}/{repeat}"
        target = f"≤ {cmd.target_s} s" if cmd.target_s is not None else "–"
        if med is None:
            lines.append(f"| `{cmd.name}` | – | – | – | – | – | {target} | FAIL | {runs} |")
            continue
        ratios = (
            f"{med['wall_s'] / base['wall_s']:.2f}× | {med['cpu_s'] / base['cpu_s']:.2f}×"
            if base is not None
            else "– | –"
        )
        lines.append(
            f"| `{cmd.name}` | {med['wall_s']:.3f} | {med['cpu_s']:.3f} | {med['rss_mb']:.0f}"
            f" | {ratios} | {target} | {verdict(cmd)} | {runs} |"
        )
    return lines


def verdict(cmd: Command) -> str:
    med = cmd.medians()
    if cmd.target_s is None:
        return "yardstick" if med is not None else "FAIL"
    if med is None or cmd.status != "ok":
        return "FAIL"
    return "PASS" if med["wall_s"] <= cmd.target_s else "FAIL"


def itemisation_lines(cmd: Command) -> list[str]:
    imports, med = cmd.imports, cmd.medians()
    if imports is None:
        return []
    wall = f"{med['wall_s'] * 1000:.0f} ms" if med is not None else "–"
    lines = [
        f"**`{cmd.name}`** — {imports['modules']} modules, {imports['total_ms']:.0f} ms of imports"
        f" under importtime (podium's own modules {imports['podium_self_ms']:.0f} ms); median"
        f" wall {wall} ({verdict(cmd)}).",
        "",
        "| package | own ms | incl. ms | first imported by |",
        "|---|---:|---:|---|",
    ]
    for pkg in imports["packages"][:TOP_N]:
        name = pkg["package"] + (" (stdlib)" if pkg["stdlib"] else "")
        lines.append(
            f"| {name} | {pkg['self_ms']:.1f} | {pkg['inclusive_ms']:.1f}"
            f" | {pkg['first_imported_by']} |"
        )
    rest = imports["packages"][TOP_N:]
    if rest:
        lines.append(
            f"| {len(rest)} others | {sum(p['self_ms'] for p in rest):.1f} | | |",
        )
    lines.append("")
    return lines


def write_reports(
    commands: list[Command],
    repeat: int,
    started: datetime,
    background: _harness.Background,
    harness_error: str,
) -> None:
    machine = _harness.machine_info()
    machine["loadavg_at_start"] = background.load_at_start
    machine["other_processes_cores"] = background.cores
    base = commands[0].medians()
    _harness.write_json(
        RESULTS_JSON,
        {
            "benchmark": "start-up",
            "date": started.isoformat(timespec="seconds"),
            "machine": machine,
            "repeat": repeat,
            "metric_note": "medians of interleaved whole-process runs after one warm-up round",
            "commands": {
                c.name: {
                    "argv": c.argv,
                    "status": c.status,
                    "median": c.medians(),
                    "ratio_to_import_aiohttp": (
                        {m: v / base[m] for m, v in med.items()}
                        if (med := c.medians()) is not None and base is not None
                        else None
                    ),
                    "target_wall_s": c.target_s,
                    "result": verdict(c),
                    "imports": c.imports,
                    "runs": [asdict(s) for s in c.samples],
                }
                for c in commands
            },
            "config": CONFIG,
            "harness_error": harness_error or None,
        },
    )
    section = [
        f"## Start-up — {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"{_harness.machine_line(machine)}; {background.note()}. Each command a whole process;"
        f" medians of {repeat} interleaved rounds after one warm-up round; the run fetches one"
        " record from the bench server and stores it into a fresh SQLite file.",
        "",
        *table_lines(commands, repeat),
        "",
        f"**{summary_line(commands)}**",
        "",
    ]
    for c in commands:
        if c.status != "ok":
            section.append(f"- {c.name}: {c.status}")
    if harness_error:
        section.append(f"- harness error (results incomplete): {harness_error}")
    if section[-1] != "":
        section.append("")
    section += [
        "Where start-up goes (`python -X importtime -m podium …`, one run each): top packages by"
        " own import time (their modules' self time; these add up to the total), inclusive time"
        " of their outermost imports (with what they pulled in), and the module that first"
        " imported them. `import aiohttp` (the yardstick) is what the reference scripts pay too.",
        "",
    ]
    for c in commands:
        section += itemisation_lines(c)
    _harness.append_results(section)


def summary_line(commands: list[Command]) -> str:
    targeted = [c for c in commands if c.target_s is not None]
    met = [c for c in targeted if verdict(c) == "PASS"]
    missed = ", ".join(c.name for c in targeted if c not in met)
    return f"start-up targets met: {len(met)}/{len(targeted)}" + (
        f" (missed: {missed})" if missed else ""
    )


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="counted rounds (default 7)")
    parser.add_argument(
        "--podium",
        type=Path,
        default=_harness.default_podium(),
        help="podium executable (default: next to this Python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--no-record", action="store_true", help="do not touch RESULTS.md or the JSON file"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be between 1 and 50")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _harness.install_signal_handlers()
    started = datetime.now(UTC)
    commands = make_commands(args.podium)
    workdir = _harness.new_workdir("startup", started)
    config = workdir / "config.toml"
    config.write_text(CONFIG)
    print(f"start-up: {args.repeat} round(s); scratch files in {workdir.relative_to(ROOT)}")
    background = _harness.Background()
    if background.load_at_start[0] > 0.5:
        print(
            f"warning: load average {background.load_at_start[0]:.2f} before starting; "
            "expect noisy figures"
        )
    if not (args.podium.is_file() and args.podium.stat().st_mode & 0o111):
        print(f"podium not found at {args.podium}", file=sys.stderr)
        return _harness.EXIT_ERROR

    server: _harness.Server | None = None
    harness_error = ""
    try:
        _harness.become_subreaper()
        server = _harness.start_server(workdir / "server.log")
        print(f"server: {server.url} (pid {server.proc.pid})", flush=True)
        seq = 0
        for round_no in range(-1, args.repeat):  # -1: warm-up (page cache, .pyc files)
            shift = (round_no + 1) % len(commands)
            for cmd in commands[shift:] + commands[:shift]:
                if cmd.status != "ok":
                    continue
                sample = run_once(cmd, round_no, config, server.url, workdir, seq)
                seq += 1
                label = "warm-up" if round_no < 0 else f"round {round_no}"
                state = "ok" if sample.ok else f"FAILED: {sample.problem}"
                print(
                    f"  {label:<8} {cmd.name:<28} wall {sample.wall_s:6.3f} s"
                    f"  cpu {sample.cpu_s:6.3f} s  rss {sample.rss_mb:5.1f} MB  {state}",
                    flush=True,
                )
                if not sample.ok:
                    if sample.output_tail:
                        print("    " + sample.output_tail.replace("\n", "\n    "), flush=True)
                    cmd.status = f"failed in round {round_no}: {sample.problem}"
                if round_no >= 0 or not sample.ok:
                    cmd.samples.append(sample)
        for cmd in commands:
            if cmd.importtime_argv is not None and cmd.status == "ok":
                cmd.imports = importtime(cmd, config, server.url, workdir)
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
        harness_error = f"{type(exc).__name__}: {exc}"
        print(f"harness error: {harness_error}", file=sys.stderr)
        if server is not None:
            print("server log:\n" + _harness.tail(workdir / "server.log"), file=sys.stderr)
    finally:
        if server is not None:
            _harness.stop_server(server.proc)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    background.stop()

    print()
    print("\n".join(table_lines(commands, args.repeat)))
    print()
    print(summary_line(commands))
    print(background.note())
    for cmd in commands:
        lines = itemisation_lines(cmd)
        if lines:
            print()
            print("\n".join(lines).rstrip())
    if not args.no_record:
        write_reports(commands, args.repeat, started, background, harness_error)
        print(
            f"recorded in {_harness.RESULTS_MD.relative_to(ROOT)} and "
            f"{RESULTS_JSON.relative_to(ROOT)}"
        )
    if args.keep:
        print(f"kept {workdir.relative_to(ROOT)}")

    if harness_error or any(c.status != "ok" for c in commands):
        return _harness.EXIT_ERROR
    if any(verdict(c) == "FAIL" for c in commands):
        return _harness.EXIT_TARGET_MISSED
    return _harness.EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        # The finally block has already stopped the server and any running command.
        print(f"interrupted ({exc}); nothing recorded", file=sys.stderr)
        sys.exit(130)
