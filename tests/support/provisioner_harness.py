"""The real token provisioner handler, invoked as EventBridge invokes it, and the ECS world it serves.

`Provisioner` runs `functions/token_provisioner/app.py` with a function built for the call's environment (a
new container, as far as caches go). `EcsWorld` starts tasks of a service the way a service's stack would
(task definition with its task role, the service's tags propagated to the task, the empty secret) and reads
back what the provisioner put.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kuma_iam_cli.local.gateway import LocalLambdaContext
from kuma_iam_cli.local.provisioner_demo import SERVICE_TAG, ProvisionerDemo, run_task
from kuma_iam_cli.local.seed import DemoWorld
from support.aws_clients import client_as


class Provisioner:
    """provisioner(event) -> the handler's answer; provisioner.configure(NAME=value or None) changes the
    environment of the next calls."""

    def __init__(
        self, module: ModuleType, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.module = module
        self.environment = dict(environment)
        self._monkeypatch = monkeypatch
        self._applied: set[str] = set()

    def configure(self, **environment: str | None) -> None:
        for name, value in environment.items():
            if value is None:
                self.environment.pop(name, None)
            else:
                self.environment[name] = value

    def apply(self) -> None:
        """Set the environment in the process, as Lambda would for a new container."""
        for name in self._applied - set(self.environment):
            self._monkeypatch.delenv(name, raising=False)
        for name, value in self.environment.items():
            self._monkeypatch.setenv(name, value)
        self._applied = set(self.environment)

    def __call__(self, event: Any, *, fresh: bool = True) -> dict[str, Any]:
        self.apply()
        if fresh:
            self.module.provisioner.cache_clear()
        answer: dict[str, Any] = self.module.lambda_handler(event, lambda_context())
        return answer


def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(
        function_name="TokenProvisionerFunction",
        aws_request_id=str(uuid.uuid4()),
        region="us-east-1",
        account_id="111111111111",
        timeout_seconds=300,
    )


@dataclass
class EcsWorld:
    """The served cluster, as the account's administrator sees it."""

    world: DemoWorld
    demo: ProvisionerDemo

    def __post_init__(self) -> None:
        admin = self.world.admins[self.world.home_account]
        self.ecs = client_as(self.world, "ecs", admin)
        self.secrets = client_as(self.world, "secretsmanager", admin)
        self.started: list[tuple[str, str]] = []  # (cluster, task): stopped when the test ends

    def stop_started(self) -> None:
        """Stop every task this test started, so later sweeps do not meet them."""
        for cluster, task in self.started:
            self.ecs.stop_task(cluster=cluster, task=task)
        self.started.clear()

    @property
    def cluster_arn(self) -> str:
        return self.demo.cluster_arn

    def new_service(self, prefix: str = "svc") -> str:
        """A service name no other test uses (secrets outlive a test in the session's embedded AWS)."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def secret_name(self, service: str) -> str:
        return f"{self.demo.secret_prefix}/{service}"

    def make_secret(self, service: str, value: str | None = "{}") -> str:
        """The service's secret as its stack creates it (None: a secret with no value at all)."""
        arguments: dict[str, Any] = {"Name": self.secret_name(service)}
        if value is not None:
            arguments["SecretString"] = value
        return str(self.secrets.create_secret(**arguments)["ARN"])

    def start_task(
        self,
        service: str | None,
        role_arn: str | None,
        *,
        cluster: str | None = None,
        tags: Mapping[str, str] | None = None,
        role_override: str | None = None,
    ) -> str:
        """A task of `service` (its kuma.io/service tag, propagated from the ECS service) running with the
        role; `tags` replace the default ones."""
        chosen = dict(tags) if tags is not None else ({SERVICE_TAG: service} if service else {})
        arn = run_task(
            self.ecs,
            cluster or self.cluster_arn,
            family=(service or "untagged")[:200],
            role_arn=role_arn,
            tags=chosen,
            role_override=role_override,
        )
        self.started.append((cluster or self.cluster_arn, arn))
        return arn

    def stop_task(self, task_arn: str) -> None:
        self.ecs.stop_task(cluster=self.cluster_arn, task=task_arn)

    def document(self, service: str) -> dict[str, Any]:
        text = self.secrets.get_secret_value(SecretId=self.secret_name(service))["SecretString"]
        document: dict[str, Any] = json.loads(text)
        return document

    def raw_value(self, service: str) -> str:
        return str(self.secrets.get_secret_value(SecretId=self.secret_name(service))["SecretString"])

    def versions(self, service: str) -> list[str]:
        listed = self.secrets.list_secret_version_ids(
            SecretId=self.secret_name(service), IncludeDeprecated=True
        )
        return [version["VersionId"] for version in listed["Versions"]]

    def put_value(self, service: str, value: str) -> None:
        self.secrets.put_secret_value(SecretId=self.secret_name(service), SecretString=value)

    def secret_exists(self, service: str) -> bool:
        try:
            self.secrets.describe_secret(SecretId=self.secret_name(service))
        except self.secrets.exceptions.ResourceNotFoundException:
            return False
        return True


def issued_services(answer: Mapping[str, Any]) -> list[str]:
    return [entry["service"] for entry in answer["issued"]]


def reasons(answer: Mapping[str, Any]) -> dict[str, str]:
    """task ARN -> the reason it was skipped."""
    return {entry["task"]: entry["reason"] for entry in answer["skipped"]}


def forged(
    pem: str, *, kid: str = "1", service: str, mesh: str = "default", expires_in: float, **claims: Any
) -> str:
    """A token signed with the demo's Kuma PEM key (kid 1 of the provisioner's keys), claims as given."""
    now = int(time.time())
    document = {
        "Name": "",
        "Mesh": mesh,
        "Tags": {"kuma.io/service": [service]},
        "Type": "dataplane",
        "jti": str(uuid.uuid4()),
        "iat": now - 300,
        "nbf": now - 300,
        "exp": int(now + expires_in),
        **claims,
    }

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'RS256', 'kid': kid, 'typ': 'JWT'})}.{part(document)}"
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
