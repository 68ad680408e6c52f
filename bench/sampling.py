"""How the bench measures on a shared, loaded machine: subject and baseline interleaved call by call, so
that whatever the neighbours do falls on both alike, and the ratio of their percentiles is the figure."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Samples:
    """Seconds per call, as measured."""

    seconds: tuple[float, ...]

    def percentile(self, fraction: float) -> float:
        """Nearest-rank percentile: with 2,000 samples, p99 is the 20th slowest call."""
        ordered = sorted(self.seconds)
        rank = max(1, round(fraction * len(ordered)))
        return ordered[rank - 1]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    def summary(self) -> dict[str, float]:
        return {"p50": self.p50, "p99": self.p99, "samples": len(self.seconds)}


def interleaved(
    subject: Callable[[], object], baseline: Callable[[], object], *, pairs: int, warm_up: int = 20
) -> tuple[Samples, Samples]:
    """`pairs` calls of each, alternating which goes first (ABBA), after `warm_up` untimed pairs."""
    for _ in range(warm_up):
        subject()
        baseline()
    timed: tuple[list[float], list[float]] = ([], [])
    calls = ((0, subject), (1, baseline))
    for index in range(pairs):
        for slot, call in calls if index % 2 == 0 else calls[::-1]:
            started = time.perf_counter()
            call()
            timed[slot].append(time.perf_counter() - started)
    return Samples(tuple(timed[0])), Samples(tuple(timed[1]))


def best_per_call(call: Callable[[], object], *, number: int, repeat: int = 5) -> float:
    """Best of `repeat` runs of `number` calls, per call: for pure CPU work, the least disturbed run."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            call()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def timed_once(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


@dataclass
class LoadWatch:
    """The machine's load average, read before and after each section: the context of every figure."""

    readings: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)

    def read(self, label: str) -> None:
        self.readings.append((label, os.getloadavg()))

    def one_minute(self) -> list[float]:
        return [reading[1][0] for reading in self.readings]


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


@dataclass(frozen=True)
class ChildPython:
    """A fresh interpreter as Lambda starts one: only the layer's packages and the core on its path (when
    the layer's dependencies were installed for the bench; else the project's venv, and figures say so)."""

    layer_packages: Path | None
    core: Path

    @property
    def environment_name(self) -> str:
        if self.layer_packages is None:
            return "the project's venv (layer packages not installed: `make bench` installs them)"
        return "the layer's locked packages only (python -S, as Lambda's /opt/python)"

    def run(
        self,
        script: Path,
        *arguments: str,
        environment: Mapping[str, str],
        timeout: float = 300,
    ) -> dict[str, object]:
        """Run `script` and return the JSON object it writes to the file named by its last argument."""
        handle, name = tempfile.mkstemp(prefix="kuma-iam-bench-", suffix=".json")
        os.close(handle)
        result = Path(name)
        python_path = [str(self.core)]
        flags: list[str] = []
        if self.layer_packages is not None:
            python_path.insert(0, str(self.layer_packages))
            flags = ["-S", "-s"]  # no site-packages: nothing but the layer and the standard library
        clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
        completed = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, *flags, str(script), *arguments, str(result)],
            env={**clean, **environment, "PYTHONPATH": os.pathsep.join(python_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        try:
            if completed.returncode != 0:
                raise RuntimeError(
                    f"{script.name} {' '.join(arguments[:1])} failed:\n{completed.stderr[-3000:]}"
                )
            answer = json.loads(result.read_text())
        finally:
            result.unlink(missing_ok=True)
        if not isinstance(answer, dict):
            raise RuntimeError(f"{script.name} wrote {answer!r}, not an object")
        return answer


def median_of(runs: Sequence[Mapping[str, object]], key: str) -> float:
    return statistics.median(float(run[key]) for run in runs)  # type: ignore[arg-type]


def collect_garbage() -> None:
    """Between sections: one section's garbage must not be collected on the next one's clock."""
    gc.collect()


def spec_file(spec: dict[str, Any]) -> Path:
    """A JSON file a fresh interpreter reads its instructions from (the caller removes it)."""
    handle, name = tempfile.mkstemp(prefix="kuma-iam-bench-", suffix=".json")
    with os.fdopen(handle, "w") as written:
        json.dump(spec, written)
    return Path(name)
