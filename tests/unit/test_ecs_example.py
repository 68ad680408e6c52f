"""examples/ecs/service.yaml is the layout the token provisioner serves: the service's tags reach its
tasks, its secret is <prefix>/<service> holding `{}`, the sidecar reads the secret's `token` key, the task
role's tags agree with the service tag by the shared rules, and the Dataplane lists its outbounds."""

from __future__ import annotations

import yaml

from kuma_iam.config import TokenProvisionerSettings
from kuma_iam.provisioning.secrets import TOKEN_KEY
from kuma_iam.rules import DataplaneClaim, ProxyType, RoleTags, claim_mismatch, role_tags
from support.cfn_template import Template
from support.project_files import REPO

EXAMPLE = REPO / "examples" / "ecs" / "service.yaml"


def test_the_secret_the_sidecar_reads_is_the_one_the_provisioner_keeps() -> None:
    # Given the example with its defaults
    template = Template.load(EXAMPLE, ServiceName="orders")
    secret = template.properties("TokenSecret")
    sidecar = next(
        container
        for container in template.properties("TaskDefinition")["ContainerDefinitions"]
        if container["Name"] == "kuma-dp"
    )

    # Then the secret is <the provisioner's default prefix>/<service>, empty, and the sidecar's token is its
    # `token` key, as ECS's valueFrom names a JSON key
    default_prefix = TokenProvisionerSettings.model_fields["secret_prefix"].default
    assert secret["Name"] == f"{default_prefix}/orders"
    assert secret["SecretString"] == "{}"
    (token,) = sidecar["Secrets"]
    assert token == {"Name": "KUMA_DATAPLANE_RUNTIME_TOKEN", "ValueFrom": f"<TokenSecret>:{TOKEN_KEY}::"}


def test_the_service_tags_reach_the_tasks_and_the_role_agrees_with_them() -> None:
    template = Template.load(EXAMPLE, ServiceName="orders", MeshName="payments")
    service = template.properties("Service")
    assert service["PropagateTags"] == "SERVICE"
    tags = {tag["Key"]: tag["Value"] for tag in service["Tags"]}
    assert tags["kuma.io/service"] == "orders"
    role = role_tags({tag["Key"]: tag["Value"] for tag in template.properties("TaskRole")["Tags"]})
    assert isinstance(role, RoleTags)
    claim = DataplaneClaim(ProxyType.DATAPLANE, tags["kuma.io/mesh"], (tags["kuma.io/service"],), None)
    assert claim_mismatch(role, claim) is None


def test_the_dataplane_template_lists_its_inbound_and_outbounds() -> None:
    template = Template.load(EXAMPLE, ServiceName="orders", UpstreamService="billing", UpstreamPort="10002")
    sidecar = next(
        container
        for container in template.properties("TaskDefinition")["ContainerDefinitions"]
        if container["Name"] == "kuma-dp"
    )
    environment = {item["Name"]: item["Value"] for item in sidecar["Environment"]}
    dataplane = yaml.safe_load(environment["KUMA_DATAPLANE_RUNTIME_RESOURCE"])
    assert dataplane["type"] == "Dataplane"
    assert dataplane["networking"]["inbound"][0]["tags"]["kuma.io/service"] == "orders"
    assert dataplane["networking"]["outbound"] == [{"port": 10002, "tags": {"kuma.io/service": "billing"}}]
    assert "{{ address }}" in environment["KUMA_DATAPLANE_RUNTIME_RESOURCE"]
