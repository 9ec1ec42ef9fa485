"""W1 benchmark harness: podium vs the raw aiohttp + sqlite3 reference, in one run.

    .venv/bin/python bench/run_w1.py [--repeat 3]

Starts bench/w1_server.py in its own process, then per round runs each contender as a child
process against a fresh SQLite file (then once more on the same file, to check the upsert),
measuring wall time, CPU time (user+sys of that child only, from wait4) and peak RSS. Prints the
medians, the podium/reference ratios and the CPU target line, appends a section to
bench/RESULTS.md and writes bench/results/w1-latest.json. See bench/README.md.

Exit status: 0 all verified and the CPU target met; 1 target missed; 2 a contender, the server
or a verification failed; 3 podium is not installed yet (the reference is still measured).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import platform
import select
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SERVER_SCRIPT = BENCH_DIR / "w1_server.py"
REFERENCE_SCRIPT = BENCH_DIR / "w1_reference.py"
CONFIG_REL = "bench/w1.toml"  # relative to ROOT, which is the children's working directory
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_JSON = BENCH_DIR / "results" / "w1-latest.json"
TMP_ROOT = BENCH_DIR / "results" / "tmp"  # git-ignored

CPU_TARGET = 1.25
SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 30.0
METRICS = ("wall_s", "cpu_s", "rss_mb")

EXIT_OK, EXIT_TARGET_MISSED, EXIT_ERROR, EXIT_NO_PODIUM = 0, 1, 2, 3


def _load_server_module() -> ModuleType:
    # Loaded by path so the harness works whether run as a script or with -m from any cwd;
    # the expected rows come from the very function that generates them.
    spec = importlib.util.spec_from_file_location("w1_server", SERVER_SCRIPT)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {SERVER_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


w1_server = _load_server_module()
EXPECTED_ROWS: int = w1_server.TOTAL_ROWS

# An opener without proxy handlers: the harness must only ever talk to 127.0.0.1.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# ---------------------------------------------------------------------------------------------
# Server


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, method: str, path: str) -> dict[str, Any]:
        req = urllib.request.Request(f"{self.url}{path}", method=method)
        with _HTTP.open(req, timeout=HTTP_TIMEOUT) as resp:
            return json.loads(resp.read())

    def next_generation(self) -> int:
        return int(self._call("POST", "/_generation")["generation"])

    def check(self) -> None:
        page = self._call("GET", "/items/0")
        if len(page.get("items", [])) != w1_server.PER_PAGE:
            raise RuntimeError(f"server answered an unexpected page: {str(page)[:200]}")


def start_server(log_path: Path) -> Server:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,  # so stop_server can signal the whole group
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], SERVER_START_TIMEOUT)
        line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(
                f"server did not report its port within {SERVER_START_TIMEOUT:.0f} s "
                f"(got {line!r}); see {log_path}"
            )
        server = Server(proc, int(line.split()[1]))
        server.check()
        return server
    except BaseException:
        stop_server(proc)
        raise


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
    if proc.stdout is not None:
        proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# Measuring one child process


@dataclass
class Run:
    contender: str
    round: int
    phase: str  # "fresh" (empty database) or "rerun" (same database, changed values)
    generation: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    returncode: int | None = None
    verified: bool = False
    problem: str = ""
    output_tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.verified


def _tail(path: Path, limit: int = 1_500) -> str:
    data = path.read_bytes() if path.exists() else b""
    return data[-limit:].decode(errors="replace").strip()


# Linux charges a forked child with its parent's peak RSS (exec keeps the larger high-water
# mark), so a contender spawned straight from this process would report at least the harness's
# own peak. Instead /bin/sh starts the contender in the background, prints its pid and exits;
# this process is a child subreaper, so the contender is re-parented here and reaped with wait4
# like a direct child: its rusage is its own, its RSS floor is that of a shell (~1 MB).
_LAUNCHER = 'out=$1; err=$2; shift 2; "$@" >"$out" 2>"$err" </dev/null & echo $!'
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(err)}")


def measure(cmd: list[str], env: dict[str, str], log_stem: Path, timeout: float, run: Run) -> None:
    """Run cmd to completion, filling run with wall time, the child's own rusage and its status."""
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    # Output goes to files, not pipes: nobody reads while we block in wait4, and a chatty
    # child must not stall on a full pipe.
    launcher_cmd = ["/bin/sh", "-c", _LAUNCHER, "sh", str(out_path), str(err_path), *cmd]
    start = time.perf_counter()
    launcher = subprocess.Popen(
        launcher_cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    # The contender stays in the launcher's process group, so this kills it and its children.
    timer = threading.Timer(timeout, _kill_group, args=(launcher.pid,))
    timer.start()
    pid = 0
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        launcher.stdout.close()
        launcher.wait()
        pid = int(line)
        # wait4, not Popen.wait: it returns the rusage of this child alone, unpolluted by the
        # server or by earlier runs (RUSAGE_CHILDREN would accumulate them all).
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        # E.g. Ctrl-C: the child is in its own session, so it would not get the signal itself.
        _kill_group(launcher.pid)
        if pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        raise
    finally:
        timer.cancel()
    run.wall_s = time.perf_counter() - start
    _kill_group(launcher.pid)  # anything the child left running must not skew the next run
    run.returncode = os.waitstatus_to_exitcode(status)
    run.cpu_s = usage.ru_utime + usage.ru_stime
    run.rss_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    if run.returncode != 0:
        killed = " (killed after timeout?)" if run.wall_s >= timeout else ""
        run.problem = f"exit status {run.returncode}{killed}"
        run.output_tail = _tail(err_path) or _tail(out_path)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------
# Verification


def _as_utc(text: str) -> datetime:
    stamp = datetime.fromisoformat(text)
    # A store may legitimately keep UTC as a naive timestamp; only the instant must match.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def verify(db: Path, generation: int) -> str:
    """Return "" if db holds exactly the rows of this generation, else what is wrong."""
    if not db.exists():
        return f"{db.name} was not created"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if "items" not in tables:
            return f"no table 'items' (tables: {tables})"
        count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        if count != EXPECTED_ROWS:
            return f"items holds {count} rows, expected {EXPECTED_ROWS}"
        try:
            rows = conn.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")
        except sqlite3.Error as exc:
            return f"cannot read id, name, amount, updated_at: {exc}"
        for expected_id, (item_id, name, amount, updated_at) in enumerate(rows):
            want = w1_server.record(expected_id, generation)
            try:
                good = (
                    item_id == expected_id
                    and name == want["name"]
                    and isinstance(amount, float)
                    and abs(amount - want["value"]) <= 1e-9 * max(1.0, abs(want["value"]))
                    and _as_utc(str(updated_at)) == _as_utc(want["updated_at"])
                )
            except ValueError:
                good = False
            if not good:
                got = (item_id, name, amount, updated_at)
                return f"row {expected_id} is {got!r}, expected {want!r} (generation {generation})"
        return ""
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Contenders


@dataclass
class Contender:
    name: str
    command: list[str]
    available: bool = True
    status: str = "ok"
    runs: list[Run] = field(default_factory=list)

    def build_command(self, url: str, db: Path) -> list[str]:
        return [arg.replace("{url}", url).replace("{db}", str(db)) for arg in self.command]

    def fresh_runs(self) -> list[Run]:
        return [r for r in self.runs if r.phase == "fresh" and r.ok]

    def rerun_runs(self) -> list[Run]:
        return [r for r in self.runs if r.phase == "rerun" and r.ok]

    def medians(self, phase: str = "fresh") -> dict[str, float] | None:
        runs = self.fresh_runs() if phase == "fresh" else self.rerun_runs()
        if not runs:
            return None
        return {m: statistics.median(getattr(r, m) for r in runs) for m in METRICS}


def make_contenders(podium: Path) -> list[Contender]:
    reference = Contender(
        "reference",
        [sys.executable, str(REFERENCE_SCRIPT.relative_to(ROOT)), "--url", "{url}", "--db", "{db}"],
    )
    # The config reads W1_URL and W1_DB from the environment, so the command itself is fixed.
    podium_cmd = [str(podium), "run", "w1", "--config", CONFIG_REL]
    contender = Contender("podium", podium_cmd)
    if not (podium.is_file() and os.access(podium, os.X_OK)):
        contender.available = False
        contender.status = f"not available ({podium} not found)"
    return [reference, contender]


def child_env(url: str, db: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(W1_URL=url, W1_DB=str(db))
    # Belt and braces for "loopback only": no proxy may intercept the children's requests.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def run_contender(
    contender: Contender, server: Server, round_no: int, workdir: Path, timeout: float
) -> None:
    db = workdir / f"r{round_no}-{contender.name}.db"
    env = child_env(server.url, db)
    cmd = contender.build_command(server.url, db)
    for phase in ("fresh", "rerun"):
        # A new generation before each phase: the rerun must overwrite every value, and the
        # verification can tell the two phases' data apart.
        run = Run(contender.name, round_no, phase, server.next_generation())
        measure(cmd, env, workdir / f"r{round_no}-{contender.name}-{phase}", timeout, run)
        if run.returncode == 0:
            run.problem = verify(db, run.generation)
            run.verified = not run.problem
        contender.runs.append(run)
        _print_run(run)
        if not run.ok:
            # One failure is enough to report; retrying a broken contender only costs time.
            contender.status = f"failed in round {round_no} ({phase}): {run.problem}"
            return


def _print_run(run: Run) -> None:
    state = "ok" if run.ok else f"FAILED: {run.problem}"
    print(
        f"  round {run.round} {run.contender:<9} {run.phase:<5}  wall {run.wall_s:6.2f} s"
        f"  cpu {run.cpu_s:6.2f} s  rss {run.rss_mb:6.1f} MB  {state}",
        flush=True,
    )
    if run.output_tail:
        print("    " + run.output_tail.replace("\n", "\n    "), flush=True)


# ---------------------------------------------------------------------------------------------
# Reporting


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in ("aiohttp", "orjson", "sqlalchemy", "podium"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "git": _git_revision(),
        # Other work on a 2-core machine inflates both contenders' figures; keep it on record.
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    rev = out.stdout.strip() if out.returncode == 0 else "no commit"
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, timeout=10, check=False
    )
    return f"{rev}{' (dirty)' if dirty.stdout.strip() else ''}"


def compare(contenders: list[Contender]) -> tuple[dict[str, float] | None, str, float | None]:
    """Ratios podium/reference per metric, the target verdict and the CPU ratio."""
    by_name = {c.name: c for c in contenders}
    ref, pod = by_name["reference"].medians(), by_name["podium"].medians()
    if ref is None:
        return None, "N/A (the reference did not complete)", None
    if pod is None:
        return None, f"N/A (podium: {by_name['podium'].status})", None
    ratios = {m: pod[m] / ref[m] for m in METRICS}
    verdict = "PASS" if ratios["cpu_s"] <= CPU_TARGET else "FAIL"
    return ratios, verdict, ratios["cpu_s"]


def table_lines(
    contenders: list[Contender], ratios: dict[str, float] | None, repeat: int
) -> list[str]:
    lines = [
        "| contender | wall s | CPU s | peak RSS MB | rerun wall s | rerun CPU s | runs ok |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in contenders:
        fresh, rerun = c.medians("fresh"), c.medians("rerun")
        if fresh is None:
            lines.append(f"| {c.name} | – | – | – | – | – | 0/{repeat} ({c.status}) |")
            continue
        rerun_cells = (
            f"{rerun['wall_s']:.2f} | {rerun['cpu_s']:.2f}" if rerun is not None else "– | –"
        )
        lines.append(
            f"| {c.name} | {fresh['wall_s']:.2f} | {fresh['cpu_s']:.2f} | {fresh['rss_mb']:.0f}"
            f" | {rerun_cells} | {len(c.fresh_runs())}/{repeat} |"
        )
    if ratios is not None:
        lines.append(
            f"| podium / reference | {ratios['wall_s']:.2f}× | {ratios['cpu_s']:.2f}×"
            f" | {ratios['rss_mb']:.2f}× | | | |"
        )
    return lines


def target_line(verdict: str, cpu_ratio: float | None) -> str:
    detail = f" ({cpu_ratio:.2f}×)" if cpu_ratio is not None else ""
    return f"podium CPU ≤ {CPU_TARGET}× reference: {verdict}{detail}"


def write_reports(
    contenders: list[Contender],
    ratios: dict[str, float] | None,
    verdict: str,
    cpu_ratio: float | None,
    repeat: int,
    started: datetime,
    harness_error: str,
) -> None:
    machine = machine_info()
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "W1",
        "workload": "5,000 GETs at concurrency 64, 20 records each, transform, upsert 100k rows",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine,
        "repeat": repeat,
        "metric_note": "medians of the fresh-database runs; rerun = same database, new values",
        "contenders": {
            c.name: {
                "available": c.available,
                "status": c.status,
                "command": c.command,
                "median": c.medians("fresh"),
                "median_rerun": c.medians("rerun"),
                "runs": [asdict(r) for r in c.runs],
            }
            for c in contenders
        },
        "ratios_podium_over_reference": ratios,
        "target": {"cpu_ratio_max": CPU_TARGET, "cpu_ratio": cpu_ratio, "result": verdict},
        "harness_error": harness_error or None,
    }
    tmp = RESULTS_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(RESULTS_JSON)  # atomic, so a reader never sees half a file

    pkgs = machine["packages"]
    section = [
        f"## W1 — {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu'] or 'unknown CPU'}), "
        f"Python {machine['python']}, SQLite {machine['sqlite']}, aiohttp {pkgs['aiohttp']}, "
        f"podium {pkgs['podium'] or 'not installed'}; git {machine['git']}; "
        f"load average at end {machine['loadavg_at_end']}. "
        f"Medians of {repeat} interleaved rounds, fresh database each; "
        "rerun = second run on the same file with changed values.",
        "",
        *table_lines(contenders, ratios, repeat),
        "",
        f"**{target_line(verdict, cpu_ratio)}**",
        "",
    ]
    for c in contenders:
        if c.status != "ok":
            section.append(f"- {c.name}: {c.status}")
    if harness_error:
        section.append(f"- harness error (results incomplete): {harness_error}")
    if section[-1] != "":
        section.append("")
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text(
            "# W1 results\n\nAppended by `bench/run_w1.py`, newest last. "
            "See bench/README.md for what the columns mean.\n\n"
        )
    with RESULTS_MD.open("a") as fh:
        fh.write("\n".join(section) + "\n")


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="W1: podium vs raw aiohttp + sqlite3")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a contender run is killed"
    )
    parser.add_argument(
        "--podium",
        type=Path,
        default=Path(sys.executable).parent / "podium",  # the venv's console script
        help="podium executable (default: next to this Python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep databases and child logs")
    parser.add_argument(
        "--no-record", action="store_true", help="do not touch RESULTS.md or the JSON file"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repeat <= 50:
        parser.error("--repeat must be between 1 and 50")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM would otherwise end this process without running the finally blocks, orphaning the
    # server; SIGINT is ignored in background jobs of non-interactive shells, so re-arm it too.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    started = datetime.now(UTC)
    contenders = make_contenders(args.podium)
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    workdir = TMP_ROOT / f"w1-{started.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    workdir.mkdir()
    print(f"W1: {args.repeat} round(s); scratch files in {workdir.relative_to(ROOT)}")
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f} before starting; expect noisy figures")
    for c in contenders:
        if not c.available:
            print(f"podium: {c.status}; measuring the reference only")

    server: Server | None = None
    harness_error = ""
    try:
        become_subreaper()
        server = start_server(workdir / "server.log")
        print(f"server: {server.url} (pid {server.proc.pid})", flush=True)
        for round_no in range(args.repeat):
            # Alternate who goes first, so warm-up and ordering effects fall on both sides.
            order = contenders if round_no % 2 == 0 else contenders[::-1]
            for contender in order:
                if contender.available and contender.status == "ok":
                    run_contender(contender, server, round_no, workdir, args.timeout)
    except (OSError, RuntimeError, ValueError) as exc:
        # urllib's errors are OSErrors. Report what was measured so far instead of a traceback.
        harness_error = f"{type(exc).__name__}: {exc}"
        print(f"harness error: {harness_error}", file=sys.stderr)
        if server is not None:
            print("server log:\n" + _tail(workdir / "server.log"), file=sys.stderr)
    finally:
        if server is not None:
            stop_server(server.proc)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios, verdict, cpu_ratio = compare(contenders)
    print()
    print("\n".join(table_lines(contenders, ratios, args.repeat)))
    print()
    print(target_line(verdict, cpu_ratio))
    if not args.no_record:
        write_reports(contenders, ratios, verdict, cpu_ratio, args.repeat, started, harness_error)
        print(f"recorded in {RESULTS_MD.relative_to(ROOT)} and {RESULTS_JSON.relative_to(ROOT)}")
    if args.keep:
        print(f"kept {workdir.relative_to(ROOT)}")

    by_name = {c.name: c for c in contenders}
    if harness_error or by_name["reference"].status != "ok":
        return EXIT_ERROR
    if not by_name["podium"].available:
        return EXIT_NO_PODIUM
    if by_name["podium"].status != "ok":
        return EXIT_ERROR
    return EXIT_OK if verdict == "PASS" else EXIT_TARGET_MISSED


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:
        # The finally blocks have already stopped the server and any running contender.
        print(f"interrupted ({exc}); nothing recorded", file=sys.stderr)
        sys.exit(130)
