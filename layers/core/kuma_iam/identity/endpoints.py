"""Which hosts are STS endpoints: exactly those botocore resolves for a region of a partition, in each variant
an SDK can be set to (FIPS, dual-stack, both, the legacy global endpoint), and nothing else.

The source is STS's endpoint rule set as botocore ships it, the data every current AWS SDK resolves with (the
Go SDK v2 of kuma-dp among them). botocore's own client also consults its older endpoints.json, which still
lacks dual-stack in aws-iso-e and aws-iso-f; the rule set has it there, and so does this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from botocore.endpoint_provider import EndpointProvider
from botocore.loaders import Loader

STS_API_VERSION = "2011-06-15"  # STS's one API version, the one every token's body names
# (UseFIPS, UseDualStack): AWS_USE_FIPS_ENDPOINT and AWS_USE_DUALSTACK_ENDPOINT in every AWS SDK.
VARIANTS: tuple[tuple[bool, bool], ...] = ((False, False), (True, False), (False, True), (True, True))


@dataclass(frozen=True, slots=True)
class StsEndpoint:
    """One STS host; the host is the variant (a token goes back to the very host it was signed for)."""

    host: str
    region: str  # the region a signature for this host names in its credential scope
    partition: str


@cache
def _botocore_data() -> tuple[EndpointProvider, dict[str, Any]]:
    """STS's endpoint rule set and the partitions it reads, both as the installed botocore ships them."""
    loader = Loader()
    partitions = loader.load_data("partitions")
    # By path: load_service_model would first list every service botocore knows (~30 ms at a cold start).
    rules = loader.load_data(f"sts/{STS_API_VERSION}/endpoint-rule-set-1")
    return EndpointProvider(rules, partitions), {p["id"]: p for p in partitions["partitions"]}


def _resolve(
    region: str, *, fips: bool, dualstack: bool, global_endpoint: bool = False
) -> tuple[str, str] | None:
    """The host botocore sends to, and the region it signs for, for these settings; None for anything but a
    plain https://<host>/ (which the forward could not reach as signed), so it is never accepted."""
    provider, _ = _botocore_data()
    resolved = provider.resolve_endpoint(
        Region=region, UseFIPS=fips, UseDualStack=dualstack, UseGlobalEndpoint=global_endpoint
    )
    url = urlsplit(resolved.url)
    if url.scheme != "https" or url.path not in ("", "/") or url.netloc != url.hostname or not url.hostname:
        return None
    schemes = resolved.properties.get("authSchemes") or [{}]
    return url.hostname, schemes[0].get("signingRegion", region)


# Each variant an SDK resolves for a region, and STS's legacy global endpoint (sts_regional_endpoints=legacy;
# signed for us-east-1), which botocore resolves for some regions only.
SETTINGS: tuple[dict[str, bool], ...] = (
    *({"fips": fips, "dualstack": dualstack} for fips, dualstack in VARIANTS),
    {"fips": False, "dualstack": False, "global_endpoint": True},
)


def _regions(partition: str) -> list[str]:
    """The partition's real regions, in botocore's order (pseudo-regions such as aws-global are not)."""
    _, partitions = _botocore_data()
    regions = partitions[partition]["regions"] if partition in partitions else ()
    return [region for region in regions if not region.endswith("-global")]


@cache
def _region_endpoints(partition: str, region: str) -> tuple[tuple[str, StsEndpoint], ...]:
    """The hosts botocore resolves for one region, in every setting (one host may serve two settings:
    GovCloud's regional endpoints are its FIPS ones)."""
    found: list[tuple[str, StsEndpoint]] = []
    for resolved in (_resolve(region, **setting) for setting in SETTINGS):
        if resolved is not None:
            host, signing_region = resolved
            found.append((host, StsEndpoint(host, signing_region, partition)))
    return tuple(found)


@cache
def partition_endpoints(partition: str) -> dict[str, StsEndpoint]:
    """Every STS host of the partition by name: each region in each setting, the first setting to name a
    host giving its endpoint. This is what a host is checked against; `sts_endpoint_for_host` finds the same
    answer while resolving only the regions a host can belong to (tests/unit/test_sts_endpoints.py)."""
    endpoints: dict[str, StsEndpoint] = {}
    for region in _regions(partition):
        for host, endpoint in _region_endpoints(partition, region):
            endpoints.setdefault(host, endpoint)
    return endpoints


@cache
def _region_labels(partition: str) -> dict[str, int]:
    return {region: index for index, region in enumerate(_regions(partition))}


@cache
def _hosts_without_a_region(partition: str) -> dict[str, StsEndpoint]:
    """The hosts that name no region of their own: STS's legacy global endpoint, wherever it resolves."""
    endpoints: dict[str, StsEndpoint] = {}
    for region in _regions(partition):
        for host, endpoint in _region_endpoints(partition, region):
            if region not in host.split("."):
                endpoints.setdefault(host, endpoint)
    return endpoints


def _endpoint_in(partition: str, host: str) -> StsEndpoint | None:
    """`partition_endpoints(partition).get(host)`, resolving only the regions `host` can belong to: every
    regional host carries its region as one of its labels, so a token for us-east-1 costs a cold start one
    region's resolutions, not the partition's (about 180 in aws)."""
    labels = _region_labels(partition)
    candidates = sorted((labels[label], label) for label in set(host.split(".")) if label in labels)
    # The partition table keeps the first region (in botocore's order) that names a host: so does this.
    for _, region in candidates:
        for named, endpoint in _region_endpoints(partition, region):
            if named == host:
                return endpoint
    return _hosts_without_a_region(partition).get(host)


def sts_endpoint_for_host(host: str, partition: str = "aws") -> StsEndpoint | None:
    """The endpoint `host` names: looked up in `partition` first, then in the others (so that a host of
    another partition can be told apart from one that is no STS endpoint at all)."""
    if endpoint := _endpoint_in(partition, host):
        return endpoint
    _, partitions = _botocore_data()
    others = (_endpoint_in(other, host) for other in partitions if other != partition)
    return next((endpoint for endpoint in others if endpoint is not None), None)


def sts_endpoint_for_region(
    region: str, *, fips: bool = False, dualstack: bool = False
) -> StsEndpoint | None:
    """The regional endpoint an SDK set to these variants signs for in `region`, if it is a known region."""
    _, partitions = _botocore_data()
    partition = next((p for p, data in partitions.items() if region in data["regions"]), None)
    if partition is None or region.endswith("-global"):
        return None
    resolved = _resolve(region, fips=fips, dualstack=dualstack)
    return None if resolved is None else partition_endpoints(partition).get(resolved[0])
