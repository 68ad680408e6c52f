"""`kuma-iam events`: re-sign the sample events under events/ against a running `serve`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser("events", help="re-sign the sample events against a running `serve`")
    events.add_argument("--world", default=".local/world.json", help="the state file `serve` wrote")
    events.add_argument(
        "--out", default="events", help="folder to write <function>/<case>.json and env.json into"
    )
    events.add_argument(
        "--container-endpoint",
        help="where a `sam local` container reaches the embedded AWS (default: host.docker.internal)",
    )
    events.add_argument(
        "--tokens", help="the token issuer's keys `serve` wrote (default: tokens.json beside the world file)"
    )
    events.add_argument("--server-id", default="kuma-demo")
    events.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kuma_iam_cli.local.events import sam_env_vars, write_events
    from kuma_iam_cli.local.seed import DemoWorld
    from kuma_iam_cli.local.token_keys import TokenKeys

    world_file = Path(args.world)
    if not world_file.is_file():
        print(
            f"kuma-iam: {world_file} not found: start `kuma-iam serve --host 0.0.0.0` first", file=sys.stderr
        )
        return 2
    world = DemoWorld.from_json(world_file.read_text())
    out = Path(args.out)
    written = write_events(world, out, server_id=args.server_id)
    endpoint = args.container_endpoint or f"http://host.docker.internal:{urlsplit(world.endpoint_url).port}"
    env_file = out / "env.json"
    tokens_file = Path(args.tokens) if args.tokens else world_file.parent / "tokens.json"
    token_keys = TokenKeys.from_json(tokens_file.read_text()) if tokens_file.is_file() else None
    env_file.write_text(
        json.dumps(
            sam_env_vars(world, endpoint_url=endpoint, server_id=args.server_id, token_keys=token_keys),
            indent=2,
        )
    )
    for path in [*written, env_file]:
        print(path)
    print('for sam itself: eval "$(tools/sam-local/sam-env.sh)"', file=sys.stderr)
    return 0
