"""Load tier: the verifier behind the local API gateway, on its own embedded AWS. Run with `make test-load`.

Opt-in: these tests run only when the marker expression selects them (`-m load`), so a bare `pytest` stays
quick. They need their own embedded AWS (moto's state is per process, and one EmbeddedAws at a time), so run
the tier on its own rather than in one process with the integration tier.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.events import VERIFY_ROUTE
from kuma_iam_cli.local.gateway import LocalGateway, load_handler
from kuma_iam_cli.local.seed import DemoWorld, control_plane_caller, seed_demo_world, verifier_environment
from support.project_files import VERIFIER_HANDLER
from support.upstream_timeouts import patient_verifier_from_env

SERVER_ID = "kuma-load"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    selected = "load" in (config.option.markexpr or "")
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.load)
            if not selected:
                item.add_marker(
                    pytest.mark.skip(reason="load tier: run `make test-load` (pytest tests/load -m load)")
                )


@pytest.fixture(scope="session")
def server_id() -> str:
    return SERVER_ID


@pytest.fixture(scope="session")
def load_world() -> Iterator[tuple[EmbeddedAws, DemoWorld]]:
    with EmbeddedAws() as aws:
        world = seed_demo_world(aws)
        aws.enable_signature_checks()
        yield aws, world


@pytest.fixture(scope="session")
def verifier_behind_gateway(
    load_world: tuple[EmbeddedAws, DemoWorld],
) -> Iterator[tuple[LocalGateway, ModuleType]]:
    """The real handler, one warm container's worth, behind the SigV4-checking local gateway."""
    _, world = load_world
    with pytest.MonkeyPatch.context() as patch:
        for name, value in verifier_environment(world, server_id=SERVER_ID).items():
            patch.setenv(name, value)
        handler = load_handler(VERIFIER_HANDLER)
        module = sys.modules[handler.__module__]
        # moto shares this process with 16 threads of load: a patient verifier (support.upstream_timeouts)
        patch.setattr(module, "verifier_from_env", patient_verifier_from_env)
        with LocalGateway(
            {VERIFY_ROUTE: handler}, [control_plane_caller(world)], api_account_id=world.home_account
        ) as gateway:
            yield gateway, module
        module.verifier.cache_clear()
