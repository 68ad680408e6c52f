"""The token provisioner's sample events on a fresh demo world, in a given order, as `sam local invoke` meets
them after `kuma-iam serve` (a world of its own: moto keeps one state per process, so this runs as a process
of its own): `python -m support.provisioner_samples case,case,...` prints one line per case, `ANSWER <case>
<answer as JSON>`, among the function's own JSON log lines.
"""

from __future__ import annotations

import json
import os
import sys

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.gateway import load_handler
from kuma_iam_cli.local.provisioner_events import PROVISIONER_CASES
from kuma_iam_cli.local.seed import seed_demo_world
from kuma_iam_cli.local.token_keys import seed_token_keys, token_provisioner_environment
from support.project_files import TOKEN_PROVISIONER_HANDLER
from support.provisioner_harness import lambda_context
from support.upstream_timeouts import patient_provisioner_function_from_env


def main(order: list[str]) -> int:
    cases = {case.name: case for case in PROVISIONER_CASES}
    with EmbeddedAws() as aws:
        world = seed_demo_world(aws)
        keys = seed_token_keys(aws, world)
        aws.enable_signature_checks()
        os.environ.update(token_provisioner_environment(world, keys))
        handler = load_handler(TOKEN_PROVISIONER_HANDLER)
        # patient with moto, which shares this process (support.upstream_timeouts)
        sys.modules["token_provisioner"].provisioner_function_from_env = patient_provisioner_function_from_env
        for name in order:
            answer = handler(cases[name].event(world), lambda_context())
            print(f"ANSWER {name} {json.dumps(answer)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1].split(",")))
