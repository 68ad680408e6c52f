"""`make profile`: where a warm verification spends its time, call by call.

The real handler in a warm container answers the same allow 1,000 times under cProfile, against the embedded
AWS in a process of its own (so the profile holds only the verifier's process). Writes bench/profile.txt:
time per call by where it goes (our code, Powertools, pydantic, the HTTP client, waiting on the socket for
STS...), then the functions that cost most by their own time and by what they call.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench.aws_process import aws_in_another_process
from bench.run import handlers_write_to
from bench.verifier import allowed_answer, load_warm_verifier
from bench.world import REPO, compact, lambda_context, signed_now, verify_event

PROFILE = REPO / "bench" / "profile.txt"

# Where each function's own time goes, by the file it is defined in (first match wins).
PLACES = (
    ("our code (kuma_iam, functions/)", ("/kuma_iam/", "/functions/")),
    ("Powertools", ("/aws_lambda_powertools/", "/jmespath/")),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("HTTP client (urllib3, http.client)", ("/urllib3/", "/http/client.py")),
    ("logging", ("/logging/",)),
    ("json", ("/json/",)),
    ("XML (STS's answer)", ("/xml/",)),
)


def place_of(filename: str, function: str) -> str:
    for place, markers in PLACES:
        if any(marker in filename for marker in markers):
            return place
    if filename == "~":  # built-ins: C code, by what it does
        if "recv" in function or "poll" in function or "select" in function:
            return "waiting on the socket (STS's answer)"
        if "send" in function or "connect" in function or "socket" in function:
            return "socket calls"
        return "built-ins (C)"
    if "/socket.py" in filename or "/selectors.py" in filename or "/ssl.py" in filename:
        return "socket calls"
    return "other Python"


def by_place(stats: pstats.Stats, calls: int) -> list[tuple[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[place_of(filename, function)] += own
    return sorted(((place, seconds / calls) for place, seconds in totals.items()), key=lambda item: -item[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--output", type=Path, default=PROFILE)
    arguments = parser.parse_args()

    with aws_in_another_process() as world, open(os.devnull, "w") as devnull, handlers_write_to(devnull):
        warm = load_warm_verifier(world)
        event = verify_event(world, compact(signed_now(world, session="bench-profile")))
        context = lambda_context(world, "VerifierFunction")

        def verification() -> None:
            if not allowed_answer(warm.handler(event, context)):
                raise AssertionError("the profiled verification was not an allow")

        for _ in range(50):
            verification()  # warm: clients built, role cached, connections open
        started = time.perf_counter()
        for _ in range(arguments.calls):
            verification()
        unprofiled = (time.perf_counter() - started) / arguments.calls
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(arguments.calls):
            verification()
        profiler.disable()

    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    places = by_place(stats, arguments.calls)
    profiled = sum(seconds for _, seconds in places)
    out.write(
        f"A warm verification through the real handler, {arguments.calls} calls against moto in another"
        " process.\n"
        f"Per call: {unprofiled * 1e6:.0f} µs without the profiler, {profiled * 1e6:.0f} µs under it"
        " (the profiler's own cost falls on every Python call, so shares matter more than totals).\n\n"
        "Own time per call, by where it is spent:\n"
    )
    for place, seconds in places:
        out.write(f"  {place:<40} {seconds * 1e6:8.1f} µs  {seconds / profiled:6.1%}\n")
    out.write("\nBy own time:\n")
    stats.sort_stats("tottime").print_stats(30)
    out.write("\nBy cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(40)
    out.write("\nOur own functions, by own time:\n")
    stats.sort_stats("tottime").print_stats(r"kuma_iam|functions/", 25)
    text = out.getvalue().replace(str(REPO) + "/", "").replace(sys.prefix + "/", "")
    arguments.output.write_text(text)
    summary_end = text.index("\nBy own time:")
    print(text[:summary_end])
    print(f"\n(whole profile in {arguments.output})")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
