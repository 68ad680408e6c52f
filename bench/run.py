"""`make bench`: the scoreboard of every function against its physical limit.

Each figure divides two measurements taken here, now, the same way, interleaved call by call (the machine
is shared: whatever else runs falls on both sides alike), and is held to a target:

- verifier: a warm verification through the real handler (in-process, role cached) against the same signed
  request forwarded bare with urllib3: p50 <= 1.10x, p99 <= 1.25x;
- cold start: a fresh interpreter importing the handler and answering one verification against a minimal
  botocore-only forwarder answering the same: <= 1.5x; each handler's import time, for the record;
- burst: 2,000 verifications across 20 roles from 8 threads: at most 20 IAM calls, no wrong decision;
- sweep: 2,000 and 5,000 roles: at most 3 IAM calls per 1,000 roles, wall time <= 1.5x one bare paginated
  GetAccountAuthorizationDetails listing of the same roles;
- tokens: PEM tokens/s >= 0.7x raw RS256 signatures/s of the same claims, a KMS token <= 1.2x one bare
  kms:Sign of the same message;
- memory: RSS after 1,000 requests per handler, and at most 1 MiB more over the next 1,000.

AWS is the embedded one (moto server on loopback, SigV4 checks on); IAM's paging comes from a stand-in that
pages as IAM does. Writes bench/results.json and bench/results.png and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench import compliance, tokens, verifier
from bench.sampling import ChildPython, LoadWatch, collect_garbage, machine
from bench.scoreboard import Figure, draw_chart, print_table, write_results
from bench.world import FUNCTIONS, REPO
from kuma_iam.observability import logger
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import seed_demo_world

RESULTS = REPO / "bench" / "results.json"
CHART = REPO / "bench" / "results.png"
SECTIONS = ("verifier", "burst", "sweep", "tokens", "cold", "memory")


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def handlers_write_to(stream: object) -> Iterator[None]:
    """The handlers log and emit metrics as they always do; only where it goes changes, so that the table
    stays readable (Powertools keeps the stream it found at import)."""
    streams = [handler for handler in logger.handlers if isinstance(handler, logging.StreamHandler)]
    with contextlib.redirect_stdout(stream):  # type: ignore[type-var]
        for handler in streams:
            handler.setStream(stream)  # type: ignore[arg-type]
        try:
            yield
        finally:
            for handler in streams:
                handler.setStream(sys.stdout)


def handler_folders() -> dict[str, Path]:
    """Every function of the application that exists on this branch, by its folder."""
    return {
        f"functions/{folder.name}": folder
        for folder in sorted(FUNCTIONS.iterdir())
        if (folder / "app.py").is_file()
    }


def git_commit() -> str:
    def git(*arguments: str) -> str:
        return subprocess.run(  # noqa: S603 - a fixed git command
            ["git", *arguments],  # noqa: S607 - git from PATH, as make finds it
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD")
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def measure(arguments: argparse.Namespace, load: LoadWatch) -> list[Figure]:
    chosen = set(arguments.only or SECTIONS)
    child = ChildPython(arguments.layer_packages, REPO / "layers" / "core")
    quick = arguments.quick
    figures: list[Figure] = []

    def section(name: str, run: Callable[[], list[Figure]]) -> None:
        collect_garbage()
        load.read(f"{name} start")
        started = time.perf_counter()
        measured = run()
        load.read(f"{name} end")
        figures.extend(measured)
        progress(
            f"{name}: {len(measured)} figures in {time.perf_counter() - started:.0f} s,"
            f" load {os.getloadavg()[0]:.1f}"
        )

    with EmbeddedAws() as aws, open(os.devnull, "w") as devnull, handlers_write_to(devnull):
        progress("seeding the embedded AWS")
        world = seed_demo_world(aws)
        keys = tokens.seed_keys(aws, world)
        aws.enable_signature_checks()
        warm = verifier.load_warm_verifier(world)
        if "verifier" in chosen:
            section(
                "verifier, warm", lambda: verifier.measure_warm(world, warm, pairs=300 if quick else 2_500)
            )
            section("verifier, before the network", lambda: verifier.measure_pre_network(world, warm))
        if "burst" in chosen:
            section("burst", lambda: verifier.measure_burst(world, warm))
        if "sweep" in chosen:
            for count in compliance.SWEEP_SIZES:
                section(f"sweep of {count:,}", lambda count=count: compliance.measure_sweep(world, count))  # type: ignore[misc]
            section("tag compliance events", lambda: compliance.measure_events(world))
        if "tokens" in chosen:
            section("tokens, signers", lambda: tokens.measure_signers(world, keys))
            section("tokens, exchange", lambda: tokens.measure_exchange(world, keys))
        if "cold" in chosen:
            rounds = 3 if quick else 9
            section("cold start", lambda: verifier.measure_cold_start(world, child, rounds=rounds))
            section("imports", lambda: verifier.measure_imports(child, handler_folders(), rounds=rounds))
        if "memory" in chosen:
            section("memory, verifier", lambda: verifier.measure_verifier_memory(world, child))
            section("memory, tag compliance", lambda: compliance.measure_compliance_memory(world, child))
            section("memory, token issuer", lambda: tokens.measure_issuer_memory(world, keys, child))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--layer-packages",
        type=Path,
        default=None,
        help="the layer's dependencies installed for Lambda (pip --target); fresh interpreters "
        "run on these alone (default: the project's venv)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, help="measure these sections alone (no files written)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples, for a quick look (no files written)"
    )
    arguments = parser.parse_args()
    if arguments.layer_packages is not None and not arguments.layer_packages.is_dir():
        parser.error(f"--layer-packages {arguments.layer_packages} is not a directory")

    started = time.perf_counter()
    load = LoadWatch()
    figures = measure(arguments, load)
    duration = time.perf_counter() - started
    print_table(figures)
    one_minute = load.one_minute()
    print(
        f"\n{len(figures)} figures in {duration:.0f} s on {os.cpu_count()} CPUs;"
        " load average (1 min) during the "
        f"run {min(one_minute):.1f} to {max(one_minute):.1f}"
    )
    if arguments.only or arguments.quick:
        print("(--only / --quick: bench/results.json and results.png left as they were)")
        return 0
    measured_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    context = {
        "measured_at": measured_at,
        "commit": git_commit(),
        "machine": machine(),
        "duration_seconds": round(duration, 1),
        "load_average": [
            {"when": label, "1m": one, "5m": five, "15m": fifteen}
            for label, (one, five, fifteen) in load.readings
        ],
        "fresh_interpreters": ChildPython(arguments.layer_packages, REPO).environment_name,
    }
    document = write_results(RESULTS, figures, context)
    draw_chart(
        CHART,
        figures,
        f"kuma-iam make bench, {measured_at}, {machine()['cpus']} CPUs, "
        f"load {min(one_minute):.1f}-{max(one_minute):.1f}, commit {context['commit']}",
    )
    met = document["targets"]
    print(
        f"targets met: {met['met']} of {met['of']};"
        f" wrote {RESULTS.relative_to(REPO)} and {CHART.relative_to(REPO)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
