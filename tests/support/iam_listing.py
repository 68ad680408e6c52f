"""An IAM stand-in that pages GetAccountAuthorizationDetails as IAM does (moto answers in one page whatever
MaxItems says): from roles it is given, or from moto's own answer, cut by Marker and MaxItems."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from support.fake_aws import Answer, Behaviour, PassThrough, ReceivedRequest, forward

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"
LISTING = "GetAccountAuthorizationDetails"
_DEFAULT_MAX_ITEMS = 100  # IAM's default page


@dataclass(frozen=True)
class ListedRole:
    account: str
    name: str
    tags: Mapping[str, str]
    trust: Mapping[str, Any]

    def get_role_xml(self) -> bytes:
        """GetRole's answer for this role (IAM gives it for the name in any case)."""
        inner = self.member_xml().removeprefix("<member>").removesuffix("</member>")
        return (
            f'<GetRoleResponse xmlns="{IAM_NS}"><GetRoleResult><Role>{inner}</Role></GetRoleResult>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></GetRoleResponse>"
        ).encode()

    def member_xml(self) -> str:
        tags = "".join(
            f"<member><Key>{escape(key)}</Key><Value>{escape(value)}</Value></member>"
            for key, value in self.tags.items()
        )
        return (
            "<member><Path>/</Path>"
            f"<RoleName>{escape(self.name)}</RoleName>"
            f"<RoleId>AROA{uuid.uuid5(uuid.NAMESPACE_DNS, self.name).hex[:17].upper()}</RoleId>"
            f"<Arn>arn:aws:iam::{self.account}:role/{escape(self.name)}</Arn>"
            "<CreateDate>2025-01-01T00:00:00Z</CreateDate>"
            f"<AssumeRolePolicyDocument>{escape(quote(json.dumps(self.trust)))}</AssumeRolePolicyDocument>"
            "<InstanceProfileList/><RolePolicyList/><AttachedManagedPolicies/>"
            f"<Tags>{tags}</Tags></member>"
        )


def listing_xml(members: Sequence[str], next_marker: str | None) -> bytes:
    truncated = (
        f"<IsTruncated>true</IsTruncated><Marker>{next_marker}</Marker>"
        if next_marker
        else ("<IsTruncated>false</IsTruncated>")
    )
    return (
        f'<GetAccountAuthorizationDetailsResponse xmlns="{IAM_NS}"><GetAccountAuthorizationDetailsResult>'
        f"{truncated}<UserDetailList/><GroupDetailList/><RoleDetailList>{''.join(members)}</RoleDetailList>"
        "<Policies/></GetAccountAuthorizationDetailsResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</GetAccountAuthorizationDetailsResponse>"
    ).encode()


def _page(request: ReceivedRequest) -> tuple[int, int]:
    params = request.params
    return int(params.get("Marker") or 0), int(params.get("MaxItems") or _DEFAULT_MAX_ITEMS)


@dataclass
class PagedRoles:
    """Answers GetAccountAuthorizationDetails from `roles`, a page per call; a request for page `n`
    (0-based) meets the next of `faults[n]` while any are left. Every other request meets `otherwise`.
    `calls` counts the listing calls; `only_key`, when set, limits the stand-in to requests signed with that
    access key (one account's), and the rest meet `otherwise`."""

    roles: Sequence[ListedRole]
    otherwise: Behaviour
    faults: dict[int, list[Behaviour]] = field(default_factory=dict)
    only_key: str | None = None
    calls: int = 0

    def choose(self, request: ReceivedRequest) -> Behaviour:
        if request.action != LISTING:
            return self.otherwise
        if self.only_key is not None and f"Credential={self.only_key}/" not in (
            request.header("Authorization") or ""
        ):
            return self.otherwise
        self.calls += 1
        start, size = _page(request)
        pending = self.faults.get(start // max(size, 1))
        if pending:
            return pending.pop(0)
        members = [role.member_xml() for role in self.roles[start : start + size]]
        end = start + size
        return Answer(200, listing_xml(members, str(end) if end < len(self.roles) else None))


@dataclass
class PagingProxy:
    """In front of moto: the listing is forwarded whole and served back a page at a time, as IAM would; every
    other request passes through. `calls` counts the listing calls the client made."""

    moto_url: str
    calls: int = 0

    def choose(self, request: ReceivedRequest) -> Behaviour:
        if request.action != LISTING:
            return PassThrough(self.moto_url)
        self.calls += 1
        whole = forward(self.moto_url, request)
        if whole.status != 200:
            return whole
        return Answer(200, page_of_moto_answer(whole.body, request))


def page_of_moto_answer(whole: bytes, request: ReceivedRequest) -> bytes:
    """One page of moto's one-page listing, by the request's Marker and MaxItems."""
    root = ET.fromstring(whole)  # noqa: S314 - moto's own answer, in a test
    members = root.findall(f".//{{{IAM_NS}}}RoleDetailList/{{{IAM_NS}}}member")
    start, size = _page(request)
    ET.register_namespace("", IAM_NS)
    chosen = [ET.tostring(member, encoding="unicode") for member in members[start : start + size]]
    end = start + size
    return listing_xml(chosen, str(end) if end < len(members) else None)
