"""What the whole-process benchmarks share: the server, measuring one child, verifying, recording.

`run_w1.py` and `run_w2.py` are this harness with one `Workload` each (podium vs the raw
aiohttp + sqlite3 reference on the same server, fresh database then a rerun, medians of
interleaved rounds); `startup.py` uses its pieces (spawning, wait4 measurement, server
lifecycle, machine line, RESULTS.md) to time short commands. One copy of the measuring code,
so W1, W2 and start-up figures are taken the same way and stay comparable.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import json
import os
import platform
import resource
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
RESULTS_MD = BENCH_DIR / "RESULTS.md"
RESULTS_DIR = BENCH_DIR / "results"
TMP_ROOT = RESULTS_DIR / "tmp"  # git-ignored

SERVER_START_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 30.0
METRICS = ("wall_s", "cpu_s", "rss_mb")
METRIC_LABELS = {"wall_s": "wall", "cpu_s": "CPU", "rss_mb": "peak RSS"}
# Other processes keeping more than this many cores busy on average make a run "not idle".
BUSY_CORES = 0.25

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


@dataclass(kw_only=True)
class Sample:
    """What measuring one child process gives."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    rss_mb: float = 0.0
    returncode: int | None = None
    problem: str = ""
    output_tail: str = field(default="", repr=False)


@dataclass(kw_only=True)
class Run(Sample):
    """One contender run of a workload."""

    contender: str
    round: int
    phase: str  # "fresh" (empty database) or "rerun" (same database, changed values)
    generation: int
    verified: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.verified


def tail(path: Path, limit: int = 1_500) -> str:
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


def measure(
    cmd: list[str],
    env: dict[str, str],
    log_stem: Path,
    timeout: float,
    sample: Sample,
    *,
    cwd: Path = ROOT,
) -> None:
    """Run cmd to completion, filling sample with wall time, the child's rusage and status.

    Needs become_subreaper() first."""
    out_path, err_path = log_stem.with_suffix(".out"), log_stem.with_suffix(".err")
    # Output goes to files, not pipes: nobody reads while we block in wait4, and a chatty
    # child must not stall on a full pipe.
    launcher_cmd = ["/bin/sh", "-c", _LAUNCHER, "sh", str(out_path), str(err_path), *cmd]
    start = time.perf_counter()
    launcher = subprocess.Popen(
        launcher_cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, start_new_session=True
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
    sample.wall_s = time.perf_counter() - start
    _kill_group(launcher.pid)  # anything the child left running must not skew the next run
    sample.returncode = os.waitstatus_to_exitcode(status)
    sample.cpu_s = usage.ru_utime + usage.ru_stime
    sample.rss_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    if sample.returncode != 0:
        killed = " (killed after timeout?)" if sample.wall_s >= timeout else ""
        sample.problem = f"exit status {sample.returncode}{killed}"
        sample.output_tail = tail(err_path) or tail(out_path)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    # Belt and braces for "loopback only": no proxy may intercept the children's requests.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        env.pop(var, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    # An installed podium has its bytecode cached (pip compiles it at install). With this set,
    # as some shells and CI images do, an editable checkout recompiles ~110 of podium's
    # modules from source in every child, ~0.11 s of each start-up that no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# ---------------------------------------------------------------------------------------------
# Was the machine idle?


def _busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # every reaped child, server too
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Background:
    """How busy other processes kept the machine while a benchmark ran.

    The load average cannot tell: the benchmark's own contender and server raise it. Instead
    the machine's busy CPU time (/proc/stat) minus the CPU time of this process and every
    child it reaped is the CPU the other engineer's work took, in cores on average."""

    def __init__(self) -> None:
        self.load_at_start = [round(x, 2) for x in os.getloadavg()]
        self._t0 = time.monotonic()
        self._busy0 = _busy_ticks()
        self._own0 = _own_cpu_s()
        self.cores: float | None = None

    def stop(self) -> float:
        """Call after the server and every child have been reaped."""
        elapsed = time.monotonic() - self._t0
        busy = (_busy_ticks() - self._busy0) / os.sysconf("SC_CLK_TCK")
        others = max(0.0, busy - (_own_cpu_s() - self._own0))
        self.cores = others / elapsed if elapsed > 0 else 0.0
        return self.cores

    def note(self) -> str:
        """The sentence for RESULTS.md."""
        load_end = [round(x, 2) for x in os.getloadavg()]
        text = f"load average at start {self.load_at_start}, at end {load_end}"
        if self.cores is not None:
            text += f"; other processes used {self.cores:.2f} cores on average during the run"
            # Not the load average: within `make bench` it still counts the benchmark before.
            if self.cores > BUSY_CORES:
                text += " — **the machine was not idle**: compare ratios, not absolute times"
        return text


# ---------------------------------------------------------------------------------------------
# Verification


def _as_utc(text: str) -> datetime:
    stamp = datetime.fromisoformat(text)
    # A store may legitimately keep UTC as a naive timestamp; only the instant must match.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def verify(db: Path, generation: int, expected_rows: int) -> str:
    """Return "" if db holds exactly ids 0..expected_rows-1 as the server sent them in this
    generation, else what is wrong."""
    if not db.exists():
        return f"{db.name} was not created"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        if "items" not in tables:
            return f"no table 'items' (tables: {tables})"
        count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        if count != expected_rows:
            return f"items holds {count} rows, expected {expected_rows}"
        try:
            rows = conn.execute("SELECT id, name, amount, updated_at FROM items ORDER BY id")
        except sqlite3.Error as exc:
            return f"cannot read id, name, amount, updated_at: {exc}"
        # Ordered by id and as many rows as expected: matching ids 0..N-1 one by one also
        # proves the rows are distinct.
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
# Workloads and contenders


@dataclass(frozen=True)
class Workload:
    """One podium-vs-reference workload on the bench server."""

    name: str  # "W1"
    summary: str  # one line: what it does
    reference_script: str  # relative to ROOT, the children's working directory
    config: str  # podium config, relative to ROOT; reads {env_prefix}_URL and _DB
    pipeline: str
    env_prefix: str
    expected_rows: int
    target_metric: str  # "cpu_s" or "wall_s": what the target is about
    target_ratio: float

    @property
    def results_json(self) -> Path:
        return RESULTS_DIR / f"{self.name.lower()}-latest.json"

    def target_text(self) -> str:
        return f"podium {METRIC_LABELS[self.target_metric]} ≤ {self.target_ratio}× reference"


@dataclass
class Contender:
    name: str
    command: list[str]
    available: bool = True
    status: str = "ok"
    runs: list[Run] = field(default_factory=list)

    def build_command(self, url: str, db: Path) -> list[str]:
        return [arg.replace("{url}", url).replace("{db}", str(db)) for arg in self.command]

    def ok_runs(self, phase: str) -> list[Run]:
        return [r for r in self.runs if r.phase == phase and r.ok]

    def medians(self, phase: str = "fresh") -> dict[str, float] | None:
        runs = self.ok_runs(phase)
        if not runs:
            return None
        return {m: statistics.median(getattr(r, m) for r in runs) for m in METRICS}


def make_contenders(workload: Workload, podium: Path) -> list[Contender]:
    reference = Contender(
        "reference",
        [sys.executable, workload.reference_script, "--url", "{url}", "--db", "{db}"],
    )
    # The config reads the URL and the database from the environment: the command is fixed.
    podium_cmd = [str(podium), "run", workload.pipeline, "--config", workload.config]
    contender = Contender("podium", podium_cmd)
    if not (podium.is_file() and os.access(podium, os.X_OK)):
        contender.available = False
        contender.status = f"not available ({podium} not found)"
    return [reference, contender]


def run_contender(
    workload: Workload,
    contender: Contender,
    server: Server,
    round_no: int,
    workdir: Path,
    timeout: float,
) -> None:
    db = workdir / f"r{round_no}-{contender.name}.db"
    prefix = workload.env_prefix
    env = child_env(**{f"{prefix}_URL": server.url, f"{prefix}_DB": str(db)})
    cmd = contender.build_command(server.url, db)
    for phase in ("fresh", "rerun"):
        # A new generation before each phase: the rerun must overwrite every value, and the
        # verification can tell the two phases' data apart.
        run = Run(
            contender=contender.name,
            round=round_no,
            phase=phase,
            generation=server.next_generation(),
        )
        measure(cmd, env, workdir / f"r{round_no}-{contender.name}-{phase}", timeout, run)
        if run.returncode == 0:
            run.problem = verify(db, run.generation, workload.expected_rows)
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
        "git": git_revision(),
        # Other work on a 2-core machine inflates both contenders' figures; keep it on record.
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(machine: dict[str, Any]) -> str:
    pkgs = machine["packages"]
    return (
        f"Machine: {machine['nproc']} CPUs ({machine['cpu'] or 'unknown CPU'}), "
        f"Python {machine['python']}, SQLite {machine['sqlite']}, aiohttp {pkgs['aiohttp']}, "
        f"podium {pkgs['podium'] or 'not installed'}; git {machine['git']}"
    )


def git_revision() -> str:
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
    # Results written by an earlier benchmark of the same `make bench` do not make the code
    # measured differ from the commit: only other changes count as dirty.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", ".", ":!bench/RESULTS.md", ":!bench/results"],
        cwd=ROOT,
        capture_output=True,
        timeout=10,
        check=False,
    )
    return f"{rev}{' (dirty)' if dirty.stdout.strip() else ''}"


def append_results(section: list[str]) -> None:
    """Append one section to bench/RESULTS.md, a blank line after the previous one (not every
    script ends its section with one)."""
    existing = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    if not existing:
        existing = (
            "# Benchmark results\n\nAppended by the scripts in `bench/`, newest last. "
            "See bench/README.md for what the columns mean.\n\n"
        )
        RESULTS_MD.write_text(existing)
    separator = "" if existing.endswith("\n\n") else "\n" if existing.endswith("\n") else "\n\n"
    with RESULTS_MD.open("a") as fh:
        fh.write(separator + "\n".join(section).rstrip("\n") + "\n")


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)  # atomic, so a reader never sees half a file


def compare(
    workload: Workload, contenders: list[Contender]
) -> tuple[dict[str, float] | None, str, float | None]:
    """Ratios podium/reference per metric, the target verdict and the targeted ratio."""
    by_name = {c.name: c for c in contenders}
    ref, pod = by_name["reference"].medians(), by_name["podium"].medians()
    if ref is None:
        return None, "N/A (the reference did not complete)", None
    if pod is None:
        return None, f"N/A (podium: {by_name['podium'].status})", None
    ratios = {m: pod[m] / ref[m] for m in METRICS}
    ratio = ratios[workload.target_metric]
    return ratios, "PASS" if ratio <= workload.target_ratio else "FAIL", ratio


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
            f" | {rerun_cells} | {len(c.ok_runs('fresh'))}/{repeat} |"
        )
    if ratios is not None:
        lines.append(
            f"| podium / reference | {ratios['wall_s']:.2f}× | {ratios['cpu_s']:.2f}×"
            f" | {ratios['rss_mb']:.2f}× | | | |"
        )
    return lines


def target_line(workload: Workload, verdict: str, ratio: float | None) -> str:
    detail = f" ({ratio:.2f}×)" if ratio is not None else ""
    return f"{workload.target_text()}: {verdict}{detail}"


def write_reports(
    workload: Workload,
    contenders: list[Contender],
    ratios: dict[str, float] | None,
    verdict: str,
    ratio: float | None,
    repeat: int,
    started: datetime,
    background: Background,
    harness_error: str,
) -> None:
    machine = machine_info()
    machine["loadavg_at_start"] = background.load_at_start
    machine["other_processes_cores"] = background.cores
    write_json(
        workload.results_json,
        {
            "benchmark": workload.name,
            "workload": workload.summary,
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
            "target": {
                "metric": workload.target_metric,
                "ratio_max": workload.target_ratio,
                "ratio": ratio,
                "result": verdict,
            },
            "harness_error": harness_error or None,
        },
    )
    section = [
        f"## {workload.name} — {started.strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"{workload.name} = {workload.summary}. {machine_line(machine)}; {background.note()}. "
        f"Medians of {repeat} interleaved rounds, fresh database each; "
        "rerun = second run on the same file with changed values.",
        "",
        *table_lines(contenders, ratios, repeat),
        "",
        f"**{target_line(workload, verdict, ratio)}**",
        "",
    ]
    for c in contenders:
        if c.status != "ok":
            section.append(f"- {c.name}: {c.status}")
    if harness_error:
        section.append(f"- harness error (results incomplete): {harness_error}")
    append_results(section)


# ---------------------------------------------------------------------------------------------
# Command line


def default_podium() -> Path:
    return Path(sys.executable).parent / "podium"  # the venv's console script


def parse_args(workload: Workload, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"{workload.name}: podium vs raw aiohttp + sqlite3 ({workload.summary})"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before a contender run is killed"
    )
    parser.add_argument(
        "--podium",
        type=Path,
        default=default_podium(),
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


def install_signal_handlers() -> None:
    # SIGTERM would otherwise end this process without running the finally blocks, orphaning the
    # server; SIGINT is ignored in background jobs of non-interactive shells, so re-arm it too.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)


def new_workdir(stem: str, started: datetime) -> Path:
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    workdir = TMP_ROOT / f"{stem}-{started.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    workdir.mkdir()
    return workdir


def main(workload: Workload, argv: list[str] | None = None) -> int:
    """Run one workload: rounds of both contenders, then print and record. Exit status as
    documented in bench/README.md."""
    args = parse_args(workload, argv)
    install_signal_handlers()
    started = datetime.now(UTC)
    contenders = make_contenders(workload, args.podium)
    workdir = new_workdir(workload.name.lower(), started)
    print(f"{workload.name}: {args.repeat} round(s); scratch files in {workdir.relative_to(ROOT)}")
    background = Background()
    if background.load_at_start[0] > 0.5:
        print(
            f"warning: load average {background.load_at_start[0]:.2f} before starting; "
            "expect noisy figures"
        )
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
                    run_contender(workload, contender, server, round_no, workdir, args.timeout)
    except (OSError, RuntimeError, ValueError) as exc:
        # urllib's errors are OSErrors. Report what was measured so far instead of a traceback.
        harness_error = f"{type(exc).__name__}: {exc}"
        print(f"harness error: {harness_error}", file=sys.stderr)
        if server is not None:
            print("server log:\n" + tail(workdir / "server.log"), file=sys.stderr)
    finally:
        if server is not None:
            stop_server(server.proc)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    background.stop()

    ratios, verdict, ratio = compare(workload, contenders)
    print()
    print("\n".join(table_lines(contenders, ratios, args.repeat)))
    print()
    print(target_line(workload, verdict, ratio))
    print(background.note())
    if not args.no_record:
        write_reports(
            workload,
            contenders,
            ratios,
            verdict,
            ratio,
            args.repeat,
            started,
            background,
            harness_error,
        )
        print(
            f"recorded in {RESULTS_MD.relative_to(ROOT)} and "
            f"{workload.results_json.relative_to(ROOT)}"
        )
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


def run_main(workload: Workload) -> None:
    """The scripts' entry point: main() with a clean message on Ctrl-C."""
    try:
        sys.exit(main(workload))
    except KeyboardInterrupt as exc:
        # The finally blocks have already stopped the server and any running contender.
        print(f"interrupted ({exc}); nothing recorded", file=sys.stderr)
        sys.exit(130)
