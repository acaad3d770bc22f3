"""What every benchmark shares: timing statistics, result tables, invariant checks, the run context."""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from devstack import REPO_ROOT
from tests.support.stack import AwsStack

# --- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (a whole number 0..100): statistics.quantiles' inclusive method
    (linear interpolation between closest ranks), so 0 and 100 are the min and the max."""
    if not values:
        return math.nan
    if len(values) == 1 or q <= 0:
        return min(values)
    if q >= 100:
        return max(values)
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass(frozen=True)
class Latency:
    """Latencies of n requests (seconds in, milliseconds out) and the rate they were served at."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float
    rps: float

    @classmethod
    def of(cls, samples: Sequence[float], wall_seconds: float) -> Latency:
        ms = sorted(s * 1000 for s in samples)
        return cls(
            n=len(ms),
            p50=percentile(ms, 50),
            p95=percentile(ms, 95),
            p99=percentile(ms, 99),
            max=ms[-1] if ms else math.nan,
            mean=sum(ms) / len(ms) if ms else math.nan,
            rps=len(ms) / wall_seconds if wall_seconds > 0 else math.nan,
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "p50_ms": r(self.p50),
            "p95_ms": r(self.p95),
            "p99_ms": r(self.p99),
            "max_ms": r(self.max),
            "mean_ms": r(self.mean),
            "rps": r(self.rps, 1),
        }


def r(value: float, digits: int = 2) -> float:
    return round(value, digits) if math.isfinite(value) else value


def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:,.{digits}f}"
    return str(value)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """`with stopwatch() as elapsed:` ... `elapsed()` is the seconds since the block started."""
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started


# --- results -------------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def _numeric(self, i: int) -> bool:
        cells = [row[i] for row in self.rows if row[i] not in ("", None)]
        return bool(cells) and all(isinstance(c, int | float) for c in cells)

    def text(self) -> str:
        cells = [self.columns] + [[fmt(c) for c in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        right = [self._numeric(i) for i in range(len(self.columns))]

        def line(row: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)
            ).rstrip()

        out = [self.title, line(cells[0]), "  ".join("-" * w for w in widths)]
        out += [line(row) for row in cells[1:]]
        return "\n".join(out)

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        align = "|" + "|".join("---:" if self._numeric(i) else ":---" for i in range(len(self.columns))) + "|"
        body = ["| " + " | ".join(fmt(c) for c in row) + " |" for row in self.rows]
        return "\n".join([f"**{self.title}**", "", head, align, *body])


@dataclass
class Check:
    """A correctness invariant a benchmark verified. A failed one makes the run exit non-zero."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class Target:
    """A target of the issue, met or missed, with its figure beside its baseline from this run."""

    what: str
    measured: str  # the figure and its baseline, e.g. "0.21 s vs import boto3 0.17 s = 1.24x"
    limit: str
    met: bool
    why: str = ""  # for a miss: by how much, why, and what would close it
    value: float | None = None  # the figure as a number, in the limit's unit (for the plots)
    bound: float | None = None  # the limit as a number: the figure must be at most this


@dataclass
class BenchResult:
    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def target(
        self,
        what: str,
        measured: str,
        limit: str,
        met: bool,
        why: str = "",
        *,
        value: float | None = None,
        bound: float | None = None,
    ) -> None:
        self.targets.append(Target(what, measured, limit, met, why, value, bound))

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    @property
    def ok(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)


class Reporter:
    """Prints progress and results to the terminal (the product's own logs go elsewhere)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def say(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Context:
    stack: AwsStack
    api_url: str
    tmp: Path
    quick: bool
    reporter: Reporter
    shared: dict[str, Any] = field(default_factory=dict)  # figures one benchmark leaves to another

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def say(self, text: str) -> None:
        self.reporter.say(f"  {text}")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu": cpu or platform.processor(),
        "mem_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "ffmpeg": _first_line([os.environ.get("FFMPEG_PATH") or "ffmpeg", "-hide_banner", "-version"]).split(
            " Copyright"
        )[0],
        "java": _first_line(["java", "-version"]),
        "dynamodb_local": _dynamodb_local_version(),
        "packages": {p: _version(p) for p in ("chalice", "moto", "pynamodb", "boto3", "requests")},
        "commit": _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "modified": modified_files(),
    }


def _first_line(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _dynamodb_local_version() -> str:
    stamps = sorted((REPO_ROOT / ".local" / "dynamodb").glob(".installed-*"))
    return stamps[-1].name.removeprefix(".installed-") if stamps else "unknown"


CODE = ("app.py", "chalicelib", "devstack", "tests/support")


def modified_files() -> list[str]:
    """Code files that differ from the commit (read-only git: ls-tree and hash-object, no index)."""
    try:
        tree = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-tree", "-r", "HEAD", "--", *CODE],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    committed = {}
    for line in tree.splitlines():
        meta, _, path = line.partition("\t")
        committed[path] = meta.split()[2]
    present = [str(p.relative_to(REPO_ROOT)) for p in _code_files()]
    paths = sorted(set(present) | set(committed))
    existing = [p for p in paths if (REPO_ROOT / p).exists()]
    hashed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "hash-object", "--stdin-paths"],
        input="\n".join(existing) + "\n",
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.split()
    now = dict(zip(existing, hashed, strict=False))
    return [p for p in paths if committed.get(p) != now.get(p) and (p.endswith(".py") or p in committed)]


def _code_files() -> list[Path]:
    files = [REPO_ROOT / "app.py"]
    for folder in CODE[1:]:
        files += sorted(p for p in (REPO_ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return [f for f in files if f.exists()]


def code_stamp() -> dict[str, float]:
    """Modification times of the code under test (other people may be editing it during a run)."""
    return {str(f.relative_to(REPO_ROOT)): f.stat().st_mtime for f in _code_files()}


def changed_files(before: dict[str, float], after: dict[str, float]) -> list[str]:
    return sorted(f for f in before.keys() | after.keys() if before.get(f) != after.get(f))


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['nproc']} cores ({m['cpu']}), {m['mem_gib']} GiB, {m['os']}; Python {m['python']}; "
        f"{m['ffmpeg']}; DynamoDB Local from {m['dynamodb_local']}; "
        f"chalice {m['packages']['chalice']}, moto {m['packages']['moto']}, "
        f"pynamodb {m['packages']['pynamodb']}; commit {m['commit']}"
        f"{' + uncommitted changes to ' + ', '.join(m['modified']) if m.get('modified') else ''}; "
        f"load average {m.get('load_1m_at_start', '?')} at the start"
    )


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (/proc/stat: all but idle and
    I/O wait), so a run's figure less its own CPU seconds is what the rest of the machine used."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, *rest = (int(f) for f in fields)
    steal = rest[0] if rest else 0
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
