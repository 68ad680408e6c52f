"""The ECS clusters the provisioner serves (`KUMA_IAM_ECS_CLUSTERS`): names or ARNs, in its own account and
region. Pure: it decides which cluster ARN is served without asking AWS."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ECS cluster names: letters, digits, '-' and '_', up to 255 characters.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}", re.ASCII)
CLUSTER_ARN = re.compile(
    r"arn:(?P<partition>[a-z-]{3,16}):ecs:(?P<region>[a-z0-9-]{1,32}):(?P<account>[0-9]{12}):"
    r"cluster/(?P<name>[A-Za-z0-9_-]{1,255})",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class ClusterArn:
    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, text: str) -> ClusterArn | None:
        match = CLUSTER_ARN.fullmatch(text)
        if match is None:
            return None
        return cls(match["partition"], match["region"], match["account"], match["name"])

    def __str__(self) -> str:
        return f"arn:{self.partition}:ecs:{self.region}:{self.account}:cluster/{self.name}"


def parse_clusters(text: str) -> tuple[str, ...]:
    """Comma-separated cluster names or ARNs, each once; ValueError naming the first that is neither.
    Empty is allowed: the provisioner then serves no cluster (provisioning is off)."""
    clusters: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not (CLUSTER_NAME.fullmatch(item) or CLUSTER_ARN.fullmatch(item)):
            raise ValueError(f"{item[:96]!r} is neither an ECS cluster name nor a cluster ARN")
        clusters.append(item)
    return tuple(dict.fromkeys(clusters))


@dataclass(frozen=True, slots=True)
class ServedClusters:
    """The served clusters as ARNs of one account and region: a name means that cluster in them."""

    arns: tuple[ClusterArn, ...]

    @classmethod
    def resolve(cls, given: tuple[str, ...], *, partition: str, region: str, account: str) -> ServedClusters:
        """ValueError for an ARN of another account or region: the provisioner reads ECS only where it runs
        (its role names those clusters, and a task role lives in its task's account)."""
        arns: list[ClusterArn] = []
        for item in given:
            arn = ClusterArn.parse(item) or ClusterArn(partition, region, account, item)
            if (arn.partition, arn.region, arn.account) != (partition, region, account):
                raise ValueError(
                    f"cluster {item} is not in this function's account {account} and region {region}"
                )
            arns.append(arn)
        return cls(tuple(dict.fromkeys(arns)))

    def serves(self, cluster_arn: str) -> bool:
        """Exactly one of ours (an ARN compared whole: a prefix or another account's namesake is not)."""
        parsed = ClusterArn.parse(cluster_arn)
        return parsed is not None and parsed in self.arns
