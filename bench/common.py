"""Helpers shared by the benchmarks: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
import platform
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between <!-- bench:NAME --> markers in BENCHMARKS.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")


@dataclass
class Section:
    """One part of `python -m bench`: a table of figures, targets checked, and notes, as Markdown."""

    key: str  # P1..P8 or a short name
    title: str
    command: str = ""
    setup: str = ""  # what ran: model, data, sizes
    rows: list[tuple[str, str]] = field(default_factory=list)
    targets: list[tuple[str, bool]] = field(default_factory=list)  # ("P6 p50 ≤ 10 ms at 100k", met?)
    notes: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # raw numbers, for BENCHMARKS.md and the JSON dump

    def row(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))

    def target(self, description: str, met: bool) -> None:
        self.targets.append((description, bool(met)))

    def markdown(self) -> str:
        lines = [f"### {self.key}: {self.title}", ""]
        if self.setup:
            lines += [self.setup, ""]
        if self.rows:
            lines += ["| figure | value |", "|---|---|", *[f"| {n} | {v} |" for n, v in self.rows], ""]
        for description, met in self.targets:
            lines.append(f"- target {description}: **{'met' if met else 'NOT met'}**")
        if self.targets:
            lines.append("")
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def peak_rss_mib() -> float:
    """This process's peak resident set size so far.

    VmHWM where Linux has it: getrusage's ru_maxrss survives fork and exec, so a worker started by a
    large process would report its parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
