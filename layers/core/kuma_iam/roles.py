"""Read a role (tags, path, RoleId, trust policy) from IAM in its own account; the verifier's reads are
cached, one IAM call per miss."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.errors import Denied, DenyReason, UpstreamUnavailable
from kuma_iam.observability import IAM_LATENCY, ROLE_CACHE_HIT, ROLE_CACHE_MISS, metrics_count, timed

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_sts import STSClient

    from kuma_iam.aws import AwsSession


@dataclass(frozen=True, slots=True)
class RoleRecord:
    account: str
    name: str
    arn: str
    role_id: str
    path: str
    tags: dict[str, str]
    # The trust policy as boto3 returns it: decoded to a dict, or the text it could not decode.
    trust_policy: dict[str, Any] | str | None = None

    @classmethod
    def from_iam(cls, account: str, role: Mapping[str, Any]) -> RoleRecord:
        """A `Role` of GetRole or a `RoleDetailList` entry of GetAccountAuthorizationDetails: same fields."""
        return cls(
            account=account,
            name=role["RoleName"],
            arn=role["Arn"],
            role_id=role["RoleId"],
            path=role["Path"],
            tags={tag["Key"]: tag["Value"] for tag in role.get("Tags", [])},
            trust_policy=role.get("AssumeRolePolicyDocument"),
        )


class IamClients:
    """An IAM client per account: our own credentials at home, a role of `role_name` assumed elsewhere (the
    verifier's read-only reader, the compliance function's compliance role)."""

    def __init__(
        self,
        session: AwsSession,
        *,
        role_name: str,
        session_name: str,
        config: Config,
        iam_endpoint_url: str | None = None,
        sts_endpoint_url: str | None = None,
        home_account: str | None = None,
    ) -> None:
        self._session = session
        self._role_name = role_name
        self._session_name = session_name
        self._config = config
        self._iam_endpoint_url = iam_endpoint_url
        self._sts_endpoint_url = sts_endpoint_url
        self._sts_client: STSClient | None = None
        self._home_account = home_account
        self._partition = session.get_partition_for_region(session.region_name or "us-east-1")
        self._clients: dict[str, tuple[IAMClient, float]] = {}
        self._lock = threading.Lock()

    def for_account(self, account: str) -> IAMClient:
        with self._lock:
            cached = self._clients.get(account)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
            client, expires = self._new_client(account)
            self._clients[account] = (client, expires)
            return client

    def _new_client(self, account: str) -> tuple[IAMClient, float]:
        if account == self._home():
            return self._iam(), float("inf")
        role_arn = f"arn:{self._partition}:iam::{account}:role/{self._role_name}"
        with aws_errors("sts", f"cannot assume {self._role_name} in account {account}"):
            credentials = self._sts.assume_role(RoleArn=role_arn, RoleSessionName=self._session_name)[
                "Credentials"
            ]
            client = self._iam(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            # Renew well before expiry so that no call runs on credentials about to lapse.
            lifetime = credentials["Expiration"].timestamp() - time.time()
        return client, time.monotonic() + max(lifetime - 300, 60)

    @property
    def _sts(self) -> STSClient:
        # Made when first needed (another account's role to assume, our own account to learn): a verifier
        # whose accounts are all home never pays for an STS client at its cold start.
        if self._sts_client is None:
            self._sts_client = self._session.client(
                "sts", endpoint_url=self._sts_endpoint_url, config=self._config
            )
        return self._sts_client

    def _iam(self, **credentials: Any) -> IAMClient:
        return self._session.client(
            "iam", endpoint_url=self._iam_endpoint_url, config=self._config, **credentials
        )

    @property
    def partition(self) -> str:
        return self._partition

    def home_account(self) -> str:
        """The account whose credentials we hold: our own, where no role needs assuming."""
        return self._home()

    def _home(self) -> str:
        if self._home_account is None:
            with aws_errors("sts", "cannot learn our own account"):
                self._home_account = self._sts.get_caller_identity()["Account"]
        return self._home_account


@dataclass(slots=True)
class _CacheEntry:
    record: RoleRecord | None  # None: IAM says the role does not exist
    expires_at: float
    # RoleIds STS vouched for that IAM has since contradicted (old sessions of a re-created or deleted
    # role): answered from the cache, so a stream of them cannot spend the account's IAM quota.
    contradicted: set[str] = field(default_factory=set)

    def answers(self, role_id: str, now: float) -> bool:
        known = self.record is not None and role_id == self.record.role_id
        return now < self.expires_at and (known or role_id in self.contradicted)


class RoleDirectory:
    """Roles by (account, name), the name compared as IAM compares it: without case (`Backend-Task` and
    `backend-task` are one role, which IAM reports in its own spelling). Concurrent misses for one role wait
    on a single IAM call."""

    def __init__(
        self,
        clients: Callable[[str], IAMClient],
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, str], _CacheEntry] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, account: str, name: str, *, role_id: str) -> RoleRecord:
        """The role, re-read once when STS names a RoleId the cache has not seen (a re-created role?)."""
        key = (account, name.casefold())
        entry = self._entries.get(key)
        if entry is not None and entry.answers(role_id, self._clock()):
            metrics_count(ROLE_CACHE_HIT)
        else:
            with self._key_lock(key):
                entry = self._entries.get(key)  # another thread may have read it while we waited
                if entry is None or not entry.answers(role_id, self._clock()):
                    metrics_count(ROLE_CACHE_MISS)
                    record = self._read(account, name)
                    entry = _CacheEntry(record, self._clock() + self._ttl)
                    if record is None or record.role_id != role_id:
                        entry.contradicted.add(role_id)
                    self._entries[key] = entry
        if entry.record is None:
            raise Denied(DenyReason.ROLE_NOT_FOUND, f"role {name} does not exist in account {account}")
        return entry.record

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _read(self, account: str, name: str) -> RoleRecord | None:
        iam = self._clients(account)
        with aws_errors("iam", f"cannot read role {name} in account {account}"), timed(IAM_LATENCY):
            try:
                role = iam.get_role(RoleName=name)["Role"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "NoSuchEntity":
                    return None
                raise
            if role["RoleName"].casefold() != name.casefold() or role["Arn"].split(":")[4:5] != [account]:
                raise UpstreamUnavailable("iam", f"IAM answered for another role than {name} in {account}")
            return RoleRecord.from_iam(account, role)
