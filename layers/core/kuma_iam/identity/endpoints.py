"""Which hosts are STS endpoints: every region of every partition botocore knows, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from botocore.loaders import Loader


@dataclass(frozen=True, slots=True)
class StsEndpoint:
    host: str
    region: str
    partition: str


@cache
def _known_endpoints() -> dict[str, StsEndpoint]:
    endpoints: dict[str, StsEndpoint] = {}
    for partition in Loader().load_data("partitions")["partitions"]:
        suffix = partition["outputs"]["dnsSuffix"]
        for region in partition["regions"]:
            if region.endswith("-global"):
                continue
            endpoints[f"sts.{region}.{suffix}"] = StsEndpoint(
                f"sts.{region}.{suffix}", region, partition["id"]
            )
    # The legacy global endpoint signs in us-east-1; real SDKs still default to it in places.
    endpoints["sts.amazonaws.com"] = StsEndpoint("sts.amazonaws.com", "us-east-1", "aws")
    return endpoints


def sts_endpoint_for_host(host: str) -> StsEndpoint | None:
    return _known_endpoints().get(host)


def sts_endpoint_for_region(region: str) -> StsEndpoint | None:
    return next(
        (e for e in _known_endpoints().values() if e.region == region and e.host != "sts.amazonaws.com"), None
    )
