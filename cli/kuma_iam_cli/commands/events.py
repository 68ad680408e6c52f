"""`kuma-iam events`: re-sign the sample events under events/ against a running `serve`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from kuma_iam_cli.arguments import port, server_id
from kuma_iam_cli.errors import CommandError
from kuma_iam_cli.local.state import (
    DEFAULT_MOTO_PORT,
    DEFAULT_STATE_ROOT,
    TOKENS_FILE,
    StackState,
    installed_from,
    running_stacks,
)

DESCRIPTION = """\
Write the sample events (events/<function>/<case>.json) freshly signed against the embedded AWS of a
running `kuma-iam serve --host 0.0.0.0`, and the `--env-vars` file that points `sam local` at it. Tokens in
the events are valid for 15 minutes.

exit status: 0 events written; 2 error (no running world, a folder that cannot be written)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser(
        "events", help="re-sign the sample events against a running `serve`", description=DESCRIPTION
    )
    events.add_argument(
        "--state-dir",
        default=str(DEFAULT_STATE_ROOT),
        help="serve's --state-dir: the stack's state is in here",
    )
    events.add_argument(
        "--moto-port",
        type=port,
        default=DEFAULT_MOTO_PORT,
        help="serve's --moto-port: which stack to sign for",
    )
    events.add_argument(
        "--world", help="the world file `serve` wrote (default: <state-dir>/<moto-port>/world.json)"
    )
    events.add_argument(
        "--out", default="events", help="folder to write <function>/<case>.json and env.json into"
    )
    events.add_argument(
        "--container-endpoint",
        help="where a `sam local` container reaches the embedded AWS "
        "(default: http://host.docker.internal:<its port>)",
    )
    events.add_argument(
        "--server-id",
        type=server_id,
        default="kuma-demo",
        help="the server id the tokens are signed for (serve's --server-id)",
    )
    events.add_argument(
        "--tokens", help="the token issuer's keys `serve` wrote (default: tokens.json beside the world file)"
    )
    events.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kuma_iam_cli.local.events import sam_env_vars, write_events
    from kuma_iam_cli.local.seed import DemoWorld
    from kuma_iam_cli.local.token_keys import TokenKeys

    world_file = (
        Path(args.world)
        if args.world
        else StackState.for_port(Path(args.state_dir), args.moto_port).world_file
    )
    if not world_file.is_file():
        running = ", ".join(f"{stack.endpoint_url} ({stack.state_dir})" for stack in running_stacks())
        raise CommandError(
            f"{world_file.absolute()} not found: start `kuma-iam serve --host 0.0.0.0` first"
            + (f"; running stacks: {running} (pick one with --moto-port)" if running else "")
        )
    world = DemoWorld.from_json(world_file.read_text())
    out = Path(args.out)
    written = write_events(world, out, server_id=args.server_id)
    endpoint = args.container_endpoint or f"http://host.docker.internal:{urlsplit(world.endpoint_url).port}"
    env_file = out / "env.json"
    tokens_file = Path(args.tokens) if args.tokens else world_file.parent / TOKENS_FILE
    if args.tokens and not tokens_file.is_file():
        raise CommandError(f"{tokens_file.absolute()} not found: give the tokens.json `serve` wrote")
    # Without it (a world from before the issuer), TokenIssuerFunction gets no env-vars entry.
    token_keys = TokenKeys.from_json(tokens_file.read_text()) if tokens_file.is_file() else None
    env_file.write_text(
        json.dumps(
            sam_env_vars(world, endpoint_url=endpoint, server_id=args.server_id, token_keys=token_keys),
            indent=2,
        )
    )
    for path in [*written, env_file]:
        print(path)
    repository = installed_from()
    sam_env = (repository or Path()) / "tools" / "sam-local" / "sam-env.sh"
    world_path = shlex.quote(str(world_file.absolute()))
    print(
        f'for sam itself: eval "$({shlex.quote(str(sam_env))} {world_path})" (the verifier\'s keys; '
        "add TagComplianceFunction or TokenIssuerFunction after the world file for that function's)",
        file=sys.stderr,
    )
    return 0
