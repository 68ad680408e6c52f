"""ECS for the provisioner, behind an injected client: the served clusters' running and pending tasks
(ListTasks, paginated), described in batches of 100 with their tags, and each task's IAM role (its override,
else its task definition's, cached by task definition revision: a revision never changes)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from kuma_iam.aws import aws_errors
from kuma_iam.provisioning.tasks import EcsTask

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

# DescribeTasks takes at most 100 tasks per call.
DESCRIBE_BATCH = 100
# ListTasks' desired statuses of a task that is, or is about to be, running.
LISTED_STATUSES = ("RUNNING", "PENDING")
# Task definition revisions whose role is remembered; a cluster runs far fewer at once.
ROLE_CACHE_SIZE = 1024


class EcsTasks:
    def __init__(self, ecs: ECSClient) -> None:
        self._ecs = ecs
        self._roles: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    def task_arns(self, cluster: str) -> list[str]:
        """Every task of the cluster ECS means to run (desired RUNNING or PENDING), each once."""
        arns: dict[str, None] = {}
        with aws_errors("ecs", f"cannot list the tasks of cluster {cluster}"):
            paginator = self._ecs.get_paginator("list_tasks")
            for status in LISTED_STATUSES:
                for page in paginator.paginate(cluster=cluster, desiredStatus=status):  # type: ignore[arg-type]
                    arns.update(dict.fromkeys(page["taskArns"]))
        return list(arns)

    def describe(self, cluster: str, task_arns: Sequence[str]) -> list[EcsTask]:
        """The tasks with their tags; a task ECS no longer knows is left out, and so is any answer for another
        cluster than the one asked about (tasks are judged as members of a served cluster)."""
        tasks: list[EcsTask] = []
        for batch in _batches(task_arns, DESCRIBE_BATCH):
            with aws_errors("ecs", f"cannot describe tasks of cluster {cluster}"):
                answer = self._ecs.describe_tasks(cluster=cluster, tasks=list(batch), include=["TAGS"])
                described = [EcsTask.from_ecs(task) for task in answer["tasks"]]
            tasks += [task for task in described if task.cluster_arn == cluster]
        return tasks

    def role_arn(self, task: EcsTask) -> str | None:
        """The IAM role the task's containers get: a RunTask override, else its task definition's."""
        if task.role_override is not None or task.task_definition_arn is None:
            return task.role_override
        definition = task.task_definition_arn
        with self._lock:
            if definition in self._roles:
                self._roles.move_to_end(definition)
                return self._roles[definition]
        with aws_errors("ecs", f"cannot describe task definition {definition}"):
            found = self._ecs.describe_task_definition(taskDefinition=definition)["taskDefinition"].get(
                "taskRoleArn"
            )
        role = found if isinstance(found, str) and found else None
        with self._lock:
            self._roles[definition] = role
            while len(self._roles) > ROLE_CACHE_SIZE:
                self._roles.popitem(last=False)
        return role


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
