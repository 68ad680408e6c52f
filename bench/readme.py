"""Put the committed scoreboard (bench/results.json) into README, between its scoreboard markers:
`python -m bench.readme` after `make bench`, when the run is to be the one README shows."""

from __future__ import annotations

import json
import re
import sys

from bench.world import REPO

README = REPO / "README.md"
BLOCK = re.compile(r"(<!-- scoreboard:start -->\n).*?(<!-- scoreboard:end -->)", re.DOTALL)


def scoreboard_block(results: dict[str, object]) -> str:
    machine = results["machine"]
    assert isinstance(machine, dict)
    loads = [reading["1m"] for reading in results["load_average"]]  # type: ignore[attr-defined, union-attr]
    targets = results["targets"]
    assert isinstance(targets, dict)
    when = str(results["measured_at"])
    return (
        f"Measured {when[:10]} ({when}, commit {results['commit']}) on {machine['cpus']} CPUs"
        f" ({machine['cpu_model']}, Python {machine['python']}), shared with other work: load average"
        f" {min(loads):.1f} to {max(loads):.1f} during the run, which took"
        f" {float(str(results['duration_seconds'])) / 60:.1f} min (`bench/results.json` holds every figure"
        f" with its p50/p99 and samples). Targets met: {targets['met']} of {targets['of']}.\n\n"
        f"{results['readme_table']}\n![make bench: each figure against its target](bench/results.png)\n\n"
    )


def main() -> int:
    results = json.loads((REPO / "bench" / "results.json").read_text())
    text = README.read_text()
    if not BLOCK.search(text):
        print("README has no <!-- scoreboard:start --> ... <!-- scoreboard:end --> block", file=sys.stderr)
        return 1
    README.write_text(BLOCK.sub(lambda match: match[1] + scoreboard_block(results) + match[2], text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
