"""A service's secret `<prefix>/<service>`: read it, and put a new version with the JSON key `token` replaced
and every other key kept. Never created or deleted here (the service's own stack makes it, `{}`), and a value
that is not a JSON object is someone else's: reported, never overwritten.

One put per refresh, however many invocations race: each put names its version (`ClientRequestToken`, which
becomes the new VersionId) after the version it replaces. The first put of a refresh creates that version;
any later one with another token is refused by Secrets Manager (ResourceExistsException: a version's value
cannot change), and one with the same value (a retried call) changes nothing.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kuma_iam.aws import aws_errors
from kuma_iam.errors import InvalidRequest
from kuma_iam.strict_json import load_strict_json

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

TOKEN_KEY = "token"  # noqa: S105 - the JSON key the task definition's valueFrom names (`<arn>:token::`)
# Secrets Manager keeps at most 65,536 bytes of SecretString; a Kuma token takes 1-2 KB (RS256, a few claims).
MAX_SECRET_BYTES = 65_536
TOKEN_ROOM = 4_096
# Names this function's versions: the same refresh of the same secret always gets the same VersionId.
_REFRESH_NAMESPACE = uuid.UUID("5b1c1a2e-8f0c-4d55-9a43-7c3e4f0a9d21")


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """The secret's current (AWSCURRENT) version as read."""

    name: str
    arn: str
    version_id: str
    document: dict[str, Any] | None  # None: the value is not a JSON object (or is binary)

    def refresh_request_token(self) -> str:
        """The VersionId of the version that replaces this one: derived, so racing refreshes collide."""
        return str(uuid.uuid5(_REFRESH_NAMESPACE, f"{self.arn}\n{self.version_id}"))

    def has_room_for_a_token(self) -> bool:
        """Whether the document with a token still fits in a secret; decided before a token is signed."""
        return len(self.with_token("x" * TOKEN_ROOM).encode()) <= MAX_SECRET_BYTES

    def with_token(self, token: str) -> str:
        """The new SecretString: the document with `token` set, every other key as it was, in its order."""
        assert self.document is not None
        return json.dumps({**self.document, TOKEN_KEY: token}, separators=(",", ":"))


def parse_document(text: str | None) -> dict[str, Any] | None:
    """The secret's JSON object; None for anything else (not JSON, a list, duplicate keys, binary)."""
    if text is None:
        return None
    try:
        document = load_strict_json(text, "the secret")
    except InvalidRequest:
        return None
    return document if isinstance(document, dict) else None


class ServiceSecrets:
    """Secrets Manager for the provisioner: GetSecretValue and PutSecretValue on `<prefix>/<service>` only."""

    def __init__(self, secrets: SecretsManagerClient, prefix: str) -> None:
        self._secrets = secrets
        self.prefix = prefix

    def name_for(self, service: str) -> str:
        return f"{self.prefix}/{service}"

    def read(self, name: str) -> SecretVersion | None:
        """The current version; None when there is no such secret or it has no current value yet."""
        with aws_errors("secretsmanager", f"cannot read secret {name}"):
            try:
                answer = self._secrets.get_secret_value(SecretId=name)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return None
                raise
            return SecretVersion(
                name=name,
                arn=answer["ARN"],
                version_id=answer["VersionId"],
                document=parse_document(answer.get("SecretString")),
            )

    def put_token(self, current: SecretVersion, token: str) -> bool:
        """Put the version that replaces `current`; False when another invocation put its own first."""
        with aws_errors("secretsmanager", f"cannot put secret {current.name}"):
            try:
                self._secrets.put_secret_value(
                    SecretId=current.arn,
                    SecretString=current.with_token(token),
                    ClientRequestToken=current.refresh_request_token(),
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceExistsException":
                    return False
                raise
        return True
