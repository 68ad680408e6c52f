"""The embedded AWS in a process of its own, seeded with the demo world, for measurements that must see only
the verifier's process (a profiler sees every thread of its own process, moto's server threads included).

Run as `python -m bench.aws_process`: prints the world as one JSON line once seeded, and stops when its
standard input closes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import DemoWorld, seed_demo_world


@contextmanager
def aws_in_another_process() -> Iterator[DemoWorld]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.aws_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the embedded AWS process stopped before it was seeded")
        yield DemoWorld.from_json(line)
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def main() -> None:
    with EmbeddedAws() as aws:
        world = seed_demo_world(aws)
        aws.enable_signature_checks()
        print(world.to_json().replace("\n", " "), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
