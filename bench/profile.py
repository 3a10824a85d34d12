"""Where a server's time goes: ``py-spy`` samples during a phase, summed per function.

Optional (``python -m bench --profile``): py-spy is not a project dependency;
install it into the venv for a profiling run (``.venv/bin/pip install
py-spy``). The raw output (collapsed stacks) is summarised into the
functions with the largest inclusive and self share of samples.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procs import BIN

RATE_HZ = 100
TOP = 25
PROJECT = ("ussd_service", "menus", "session_store", "ledger")
LIBRARIES = (
    "structlog",
    "logging",
    "redis",
    "asyncpg",
    "aiohttp",
    "transitions",
    "babel",
    "phonenumbers",
    "prometheus_client",
    "json",
)


def available() -> str | None:
    """The py-spy executable, or None."""
    candidate = BIN / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` (and its Python children) for ``seconds`` into ``output``."""
    exe = available()
    if exe is None:
        return None
    argv = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    argv += ["--rate", str(RATE_HZ), "--format", "raw", "--output", str(output)]
    argv += ["--subprocesses"]  # blocking: whole stacks (nonblocking tears half of them)
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def _package(frame: str) -> str:
    """The top-level package of a frame (by its path), if it is one worth a line."""
    path = frame.partition(" (")[2].rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    for package in (*PROJECT, *LIBRARIES):
        if package in parts:
            return package
    return ""


def summarise(raw: Path) -> dict[str, Any]:
    """Inclusive and self sample shares per function from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")[1:]]  # the first frame is the process
        if not frames:
            continue
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
        for package in {_package(f) for f in stack.split(";")[1:]} - {""}:
            packages[package] += count
    if not total:
        return {"samples": 0, "inclusive": [], "self": [], "packages": []}
    return {
        "samples": total,
        "inclusive": [(n, c / total) for n, c in inclusive.most_common(TOP)],
        "self": [(n, c / total) for n, c in own.most_common(TOP)],
        "packages": [(n, c / total) for n, c in packages.most_common()],
        "project": [
            (n, c / total)
            for n, c in inclusive.most_common()
            if n.split("(", 1)[-1].split("/", 1)[0] in PROJECT
        ][:TOP],
    }
