"""The sam tier: the built application in Lambda containers (`sam local`), against an embedded AWS.

One session holds one Docker engine with the stand-in image, one `sam build`, and one embedded AWS that
listens on every interface so the containers reach it at host.docker.internal (samconfig's `local`
environment adds that host). Every `sam local` call is timed; the summary prints at the end of the run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import HOME_ACCOUNT, seed_demo_world
from kuma_iam_cli.local.token_keys import seed_token_keys
from support.project_files import REPO
from support.sam_stack import (
    ENGINE,
    REPLAY_TABLE,
    SAM,
    SamStack,
    Timings,
    container_env_vars,
    engine_environment,
    sam_environment,
    write_env_file,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.sam)


_TIMINGS = pytest.StashKey[Timings]()


@pytest.fixture(scope="session")
def timings(request: pytest.FixtureRequest) -> Timings:
    recorded = Timings()
    request.config.stash[_TIMINGS] = recorded
    return recorded


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorded = config.stash.get(_TIMINGS, None)
    if recorded is None:
        return
    terminalreporter.section("sam tier timings")
    for line in recorded.lines():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def sam_stack(tmp_path_factory: pytest.TempPathFactory, timings: Timings) -> Iterator[SamStack]:
    work = tmp_path_factory.mktemp("sam")
    with timings.step("engine.sh start + image"):
        subprocess.run([str(ENGINE), "start"], check=True, timeout=600)
        subprocess.run([str(ENGINE), "image"], check=True, timeout=1200)
        engine = engine_environment()

    build_dir = work / "build"
    with timings.step("sam build"):
        built = subprocess.run(
            [str(SAM), "build", "--build-dir", str(build_dir)],
            cwd=REPO,
            env=sam_environment(engine),
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]

    # Every interface, not the loopback: the function containers sit on Docker's bridge.
    with EmbeddedAws(host="0.0.0.0") as aws:  # noqa: S104
        with timings.step("embedded AWS: seed, signing keys, replay table"):
            world = seed_demo_world(aws)
            token_keys = seed_token_keys(aws, world)
            aws.client_in_account("dynamodb", HOME_ACCOUNT).create_table(
                TableName=REPLAY_TABLE,
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            aws.enable_signature_checks()
            env_vars = container_env_vars(world, aws, token_keys)
            env_file = write_env_file(work / "env.json", env_vars)
        yield SamStack(
            world=world,
            aws=aws,
            build_template=build_dir / "template.yaml",
            work_dir=work,
            env_file=env_file,
            env_vars=env_vars,
            process_env=sam_environment(engine, world),
            timings=timings,
            token_keys=token_keys,
        )
