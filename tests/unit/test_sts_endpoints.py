"""STS hosts the verifier accepts: exactly those a real botocore STS client signs for, in every variant.

The oracle is botocore itself, used as a sidecar's SDK is: an STS client configured with use_fips_endpoint and
use_dualstack_endpoint (what AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT set), whose signed request is
captured before it would leave. No network.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import EndpointVariantError
from botocore.loaders import Loader

from kuma_iam.errors import InvalidRequest
from kuma_iam.identity.checks import TokenPolicy, check_signed_request
from kuma_iam.identity.endpoints import (
    VARIANTS,
    partition_endpoints,
    sts_endpoint_for_host,
    sts_endpoint_for_region,
)
from kuma_iam.identity.token import SignedRequest, decode_token, encode_compact, encode_vault
from kuma_iam_cli.signer import sign_identity_request
from support.botocore_tokens import botocore_signed
from support.token_mutations import header, moved_to, signing_time, with_authorization
from support.verifier_harness import read_only_credentials

SERVER_ID = "cp-unit-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIAEXAMPLEEXAMPLE01",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "session-token",
}
PARTITIONS = {p["id"]: p for p in Loader().load_data("partitions")["partitions"]}
REGIONS = [
    (partition, region)
    for partition, data in PARTITIONS.items()
    for region in data["regions"]
    if not region.endswith("-global")
]
VARIANT_IDS = {
    (False, False): "regional",
    (True, False): "fips",
    (False, True): "dualstack",
    (True, True): "both",
}


def policy_for(partition: str) -> TokenPolicy:
    return TokenPolicy(
        server_id=SERVER_ID,
        max_age=timedelta(seconds=900),
        max_skew=timedelta(seconds=300),
        partition=partition,
    )


def host_of(request: SignedRequest) -> str:
    return urlsplit(request.url).hostname or ""


# --- botocore's own tokens, every region and variant --------------------------------------------------------


@pytest.mark.parametrize(("fips", "dualstack"), VARIANTS, ids=[VARIANT_IDS[v] for v in VARIANTS])
@pytest.mark.parametrize(("partition", "region"), REGIONS, ids=[region for _, region in REGIONS])
def test_a_token_signed_with_any_endpoint_setting_passes_in_its_partition(
    partition: str, region: str, fips: bool, dualstack: bool
) -> None:
    # Given GetCallerIdentity as a botocore STS client set to this variant signs it for this region, and as
    # our signer (kuma-iam token) set to the same variant signs it
    ours = sign_identity_request(
        read_only_credentials(CREDENTIALS), server_id=SERVER_ID, region=region, fips=fips, dualstack=dualstack
    )
    try:
        signed = botocore_signed(
            CREDENTIALS, server_id=SERVER_ID, region=region, fips=fips, dualstack=dualstack
        )
    except EndpointVariantError:
        # botocore's client still consults its legacy endpoints.json, which has no dual-stack for aws-iso-e
        # and aws-iso-f; SDKs that resolve by the rule set alone (Go v2, as kuma-dp) sign for its host
        assert (partition, dualstack) in {("aws-iso-e", True), ("aws-iso-f", True)}
        signed = ours
    # Then both sign for the same host
    assert host_of(ours) == host_of(signed)
    assert header(ours, "Host") == host_of(signed)
    # And a verifier of the region's partition takes it, in either encoding, addressed to that very host:
    # the same variant it was signed for, never another
    for encoded in (encode_compact(signed), encode_vault(signed)):
        call = check_signed_request(decode_token(encoded), policy_for(partition), signing_time(signed))
        assert (call.endpoint.host, call.endpoint.region, call.endpoint.partition) == (
            host_of(signed),
            region,
            partition,
        )


@pytest.mark.parametrize(("fips", "dualstack"), VARIANTS, ids=[VARIANT_IDS[v] for v in VARIANTS])
def test_a_token_of_another_partition_in_any_variant_is_refused(fips: bool, dualstack: bool) -> None:
    # Given a commercial-partition verifier, and tokens botocore signs for GovCloud and China in this variant
    for region in ("us-gov-west-1", "cn-north-1"):
        signed = botocore_signed(
            CREDENTIALS, server_id=SERVER_ID, region=region, fips=fips, dualstack=dualstack
        )
        # When checked / Then refused before the network: those accounts are not the verifier's
        with pytest.raises(InvalidRequest, match="another partition than aws"):
            check_signed_request(signed, policy_for("aws"), signing_time(signed))


# --- the table itself ---------------------------------------------------------------------------------------


def test_each_partition_accepts_four_variants_per_region_and_nothing_else() -> None:
    # Given botocore's partitions
    for partition, data in PARTITIONS.items():
        regions = [region for region in data["regions"] if not region.endswith("-global")]
        hosts = partition_endpoints(partition)
        # Then every host names one of the partition's regions (or is the legacy global endpoint), and each
        # region has its regional, FIPS, dual-stack and FIPS dual-stack host, some of them shared
        assert all(endpoint.region in regions for endpoint in hosts.values()), partition
        for region in regions:
            own = {host for host, endpoint in hosts.items() if endpoint.region == region}
            assert 2 <= len({h for h in own if region in h}) <= len(VARIANTS), (partition, region, own)
    # And the commercial partition's count is 4 per region and the legacy global endpoint
    commercial = [r for r in PARTITIONS["aws"]["regions"] if not r.endswith("-global")]
    assert len(partition_endpoints("aws")) == 4 * len(commercial) + 1
    assert partition_endpoints("aws")["sts.amazonaws.com"].region == "us-east-1"
    # And GovCloud's regional hosts are its FIPS ones: three hosts per region
    assert len(partition_endpoints("aws-us-gov")) == 3 * 2


def test_a_host_is_found_as_the_whole_table_would_find_it_resolving_only_its_regions() -> None:
    # Given every host of every partition's table, and lookalikes that are in no table
    lookalikes = [
        "sts.us-east-1.amazonaws.com.evil.example",
        "sts.amazonaws.com.",
        "us-east-1",
        "sts..api.aws",
        "sts.us-east-1.api.aws.cn",
        "sts-fips.amazonaws.com",
        "sts.aws-global.amazonaws.com",
        "",
    ]
    hosts = {host for partition in PARTITIONS for host in partition_endpoints(partition)}
    for partition in PARTITIONS:
        for host in [*sorted(hosts), *lookalikes]:
            # Then the lookup names the endpoint the whole table names: the verifier's partition first,
            # then the others in botocore's order, nothing for a lookalike
            tables = [
                partition_endpoints(partition),
                *(partition_endpoints(p) for p in PARTITIONS if p != partition),
            ]
            expected = next((table[host] for table in tables if host in table), None)
            assert sts_endpoint_for_host(host, partition) == expected, (partition, host)


@pytest.mark.parametrize(
    ("region", "fips", "dualstack", "host"),
    [
        ("us-east-1", False, False, "sts.us-east-1.amazonaws.com"),
        ("us-east-1", True, False, "sts-fips.us-east-1.amazonaws.com"),
        ("us-east-1", False, True, "sts.us-east-1.api.aws"),
        ("us-east-1", True, True, "sts-fips.us-east-1.api.aws"),
        ("us-gov-west-1", True, False, "sts.us-gov-west-1.amazonaws.com"),
        ("us-gov-west-1", True, True, "sts-fips.us-gov-west-1.api.aws"),
        ("cn-north-1", False, True, "sts.cn-north-1.api.amazonwebservices.com.cn"),
        ("cn-northwest-1", True, False, "sts-fips.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_the_endpoint_an_sdk_setting_leads_to(region: str, fips: bool, dualstack: bool, host: str) -> None:
    endpoint = sts_endpoint_for_region(region, fips=fips, dualstack=dualstack)
    assert endpoint is not None
    assert (endpoint.host, endpoint.region) == (host, region)


@pytest.mark.parametrize("region", ["aws-global", "mars-north-1", "", "US-EAST-1"])
def test_no_endpoint_for_what_is_not_a_region(region: str) -> None:
    assert sts_endpoint_for_region(region) is None
    assert sts_endpoint_for_region(region, fips=True, dualstack=True) is None


# --- lookalikes of the FIPS and dual-stack hosts ------------------------------------------------------------

NOT_STS = "not an STS endpoint of a known partition and region"
LOOKALIKES = [
    ("sts-fips.us-east-1.amazonaws.com.evil.com", NOT_STS),
    ("sts.us-east-1.api.aws.evil.com", NOT_STS),
    ("sts-fips.us-east-1.api.aws.", NOT_STS),
    ("STS-FIPS.US-EAST-1.AMAZONAWS.COM", NOT_STS),
    ("sts.US-EAST-1.api.aws", NOT_STS),
    ("sts-fips.xx-fake-1.amazonaws.com", NOT_STS),
    ("sts-fips.aws-global.amazonaws.com", NOT_STS),  # botocore resolves it for a pseudo-region, not a region
    ("sts.aws-global.api.aws", NOT_STS),
    ("sts-fips.amazonaws.com", NOT_STS),
    ("sts.api.aws", NOT_STS),
    ("sts-dualstack.us-east-1.amazonaws.com", NOT_STS),
    ("sts.dualstack.us-east-1.amazonaws.com", NOT_STS),
    ("sts-fips.dualstack.us-east-1.amazonaws.com", NOT_STS),
    ("sts-fips.us-east-1.api.amazonwebservices.com.cn", NOT_STS),
    ("sts.us-east-1.api.aws.cn", NOT_STS),
    ("fips.sts.us-east-1.amazonaws.com", NOT_STS),
    ("sts-fips-us-east-1.amazonaws.com", NOT_STS),
    ("sts.us-gov-west-1.api.aws", "another partition than aws"),
    ("sts-fips.us-gov-east-1.api.aws", "another partition than aws"),
    ("sts-fips.cn-north-1.amazonaws.com.cn", "another partition than aws"),
]


@pytest.mark.parametrize(("host", "message"), LOOKALIKES, ids=[host for host, _ in LOOKALIKES])
def test_lookalike_of_a_fips_or_dual_stack_host_is_refused(
    host: str, message: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_signed_request(moved_to(signed_request, host), policy, signed_at)


@pytest.mark.parametrize(
    "url",
    [
        "https://sts-fips.us-east-1.amazonaws.com:443/",
        "https://sts.us-east-1.api.aws@evil.com/",
        "https://evil.com@sts-fips.us-east-1.api.aws/",
    ],
)
def test_fips_or_dual_stack_url_with_a_port_or_credentials_is_refused(
    url: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    with pytest.raises(InvalidRequest, match="must not carry credentials or a port"):
        check_signed_request(replace(signed_request, url=url), policy, signed_at)


@pytest.mark.parametrize("host", ["sts-fips.eu-west-1.amazonaws.com", "sts.eu-west-1.api.aws"])
def test_variant_host_of_another_region_than_the_scope_is_refused(
    host: str, signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    # Given a us-east-1 signature moved to eu-west-1's FIPS or dual-stack host (URL and Host alike)
    with pytest.raises(InvalidRequest, match="credential scope region disagrees with the URL region"):
        check_signed_request(moved_to(signed_request, host), policy, signed_at)


def test_legacy_global_host_with_a_fips_scope_region_is_refused(
    signed_request: SignedRequest, policy: TokenPolicy, signed_at: datetime
) -> None:
    request = with_authorization(moved_to(signed_request, "sts.amazonaws.com"), region="us-west-2")
    with pytest.raises(InvalidRequest, match="credential scope region disagrees"):
        check_signed_request(request, policy, signed_at)
