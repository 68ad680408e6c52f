"""Sample events for TokenProvisionerFunction, in the shapes EventBridge delivers them: ECS task state changes
("ECS Task State Change", source aws.ecs) of the demo world's tasks, and the schedule's tick, written to
events/token_provisioner/ (the summary each must give: its expected.json). A task's ARN is the world's own
(ECS numbers tasks), so `kuma-iam events` writes them afresh for each stack. The same builders make tests'
events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kuma_iam_cli.local.seed import DemoWorld

TASK_STATE_CHANGE = "ECS Task State Change"
SCHEDULED = "Scheduled Event"
SWEEP_RULE = "kuma-iam-TokenProvisionerSweep"


def task_state_change(
    cluster_arn: str,
    task_arn: str,
    *,
    last_status: str = "PENDING",
    desired_status: str = "RUNNING",
    event_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """An ECS Task State Change as EventBridge delivers it: the fields ECS sends that the provisioner reads
    (which task, in which cluster) and some it does not (it reads the task itself from ECS)."""
    account, region = cluster_arn.split(":")[4], cluster_arn.split(":")[3]
    moment = time or _now()
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": TASK_STATE_CHANGE,
        "source": "aws.ecs",
        "account": account,
        "time": moment,
        "region": region,
        "resources": [task_arn],
        "detail": {
            "clusterArn": cluster_arn,
            "taskArn": task_arn,
            "desiredStatus": desired_status,
            "lastStatus": last_status,
            "launchType": "FARGATE",
            "group": "service:demo",
            "containers": [],
            "createdAt": moment,
            "version": 1,
        },
    }


def scheduled_sweep(
    account: str = "111111111111",
    region: str = "us-east-1",
    *,
    event_id: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """The schedule's tick (the template's Sweep rule): sweep every served cluster."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": SCHEDULED,
        "source": "aws.events",
        "account": account,
        "time": time or _now(),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account}:rule/{SWEEP_RULE}"],
        "detail": {},
    }


@dataclass(frozen=True)
class ProvisionerCase:
    """One sample event, made for a world (its tasks' ARNs). The answer it must get is in
    events/token_provisioner/expected.json (local/expected.py)."""

    name: str
    event: Callable[[DemoWorld], dict[str, Any]]


# The events' time: fixed, so a re-written file changes only where the world's task ARNs differ.
SAMPLE_TIME = "2025-06-02T09:30:00Z"


def _started(case: str, task: str) -> ProvisionerCase:
    """The case whose event is ECS's when the demo task `task` (provisioner_demo.DEMO_TASKS) is starting."""

    def event(world: DemoWorld) -> dict[str, Any]:
        demo = world.provisioning
        return task_state_change(
            demo.cluster_arn, demo.task_arns[task], event_id=_fixed(case), time=SAMPLE_TIME
        )

    return ProvisionerCase(case, event)


PROVISIONER_CASES: tuple[ProvisionerCase, ...] = (
    # backend's task starts; its role is for backend: a token in kuma-iam/dataplane-tokens/backend
    _started("new-tagged-task", "backend"),
    # a task with no kuma.io/service tag is no mesh task: nothing to do
    _started("new-untagged-task", "report-job"),
    # a task tagged payments-api running with backend's role: no token, a finding
    _started("identity-mismatch", "impostor"),
    # every running and pending task of the served cluster
    ProvisionerCase(
        "scheduled-sweep",
        lambda world: scheduled_sweep(
            world.home_account, world.region, event_id=_fixed("scheduled-sweep"), time=SAMPLE_TIME
        ),
    ),
    # an ECS event of another kind: refused, naming what the function takes
    ProvisionerCase(
        "not-a-task-event",
        lambda world: {
            **task_state_change(
                world.provisioning.cluster_arn,
                world.provisioning.task_arns["backend"],
                event_id=_fixed("not-a-task-event"),
                time=SAMPLE_TIME,
            ),
            "detail-type": "ECS Container Instance State Change",
        },
    ),
)


def write_provisioner_events(world: DemoWorld, out_dir: Path) -> list[Path]:
    """Write out_dir/token_provisioner/<case>.json for every case; returns the paths written."""
    folder = out_dir / "token_provisioner"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for case in PROVISIONER_CASES:
        path = folder / f"{case.name}.json"
        path.write_text(json.dumps(case.event(world), indent=2) + "\n")
        written.append(path)
    return written


def _fixed(name: str) -> str:
    # Stable ids, so that the committed files do not change each time they are written.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kuma-iam/events/token_provisioner/{name}"))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
