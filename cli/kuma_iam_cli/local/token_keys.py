"""The token issuer's part of the demo world: signing keys (two KMS keys, a Kuma PEM key in Secrets Manager),
the revocations table, and the issuer's own least-privilege user."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kuma_iam.tokens.revocations import SCOPE_INDEX
from kuma_iam_cli.local.embedded_aws import EmbeddedAws
from kuma_iam_cli.local.seed import (
    READER_ROLE_NAME,
    DemoWorld,
    UserCredentials,
    create_user,
    verifier_environment,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

ISSUER_USER_NAME = "kuma-iam-token-issuer"
DATAPLANE_KEY_ALIAS = "alias/kuma-iam-dataplane-tokens"
ZONE_KEY_ALIAS = "alias/kuma-iam-zone-tokens"
PEM_SECRET_NAME = "kuma-iam/dataplane-token-signing-key-1"  # noqa: S105 - a name, not a secret
REVOCATION_TABLE = "kuma-iam-token-revocations"
DEMO_ZONE = "zone-1"
DEMO_MESHES = ("default", "payments")


@dataclass(frozen=True)
class TokenKeys:
    """Where the demo issuer's keys and table are, and the principal it runs as."""

    dataplane_key_alias: str
    dataplane_key_arn: str
    zone_key_alias: str
    zone_key_arn: str
    pem_secret_arn: str
    revocation_table: str
    zone: str
    meshes: tuple[str, ...]
    issuer: UserCredentials
    # The PEM key as an operator who made it with kumactl would still hold it; throwaway, local only.
    pem: str = field(repr=False)

    @property
    def signing_keys(self) -> str:
        """After a rotation: the operator's old PEM key stays published as kid 1, KMS signs as kid 2."""
        return f"1={self.pem_secret_arn},2={self.dataplane_key_alias}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TokenKeys:
        data: dict[str, Any] = json.loads(text)
        data["issuer"] = UserCredentials(**data["issuer"])
        data["meshes"] = tuple(data["meshes"])
        return cls(**data)


def seed_token_keys(aws: EmbeddedAws, world: DemoWorld) -> TokenKeys:
    """Create the issuer's keys, table and user (its own principal, as each function has its own role) in the
    world's home account; call before `enable_signature_checks`."""
    account = world.home_account
    kms = cast("KMSClient", aws.client_in_account("kms", account))
    dataplane_key = _signing_key(kms, DATAPLANE_KEY_ALIAS, "kuma-iam dataplane tokens")
    zone_key = _signing_key(kms, ZONE_KEY_ALIAS, "kuma-iam zone tokens")
    pem = new_kuma_signing_key()
    secrets = cast("SecretsManagerClient", aws.client_in_account("secretsmanager", account))
    secret_arn = secrets.create_secret(
        Name=PEM_SECRET_NAME, SecretString=pem, Description="a Kuma signing key made by kumactl"
    )["ARN"]
    create_revocation_table(cast("DynamoDBClient", aws.client_in_account("dynamodb", account)))
    statements: list[dict[str, Any]] = [
        # What the verifier needs (the issuer verifies identities the same way)...
        {"Effect": "Allow", "Action": ["iam:GetRole"], "Resource": "*"},
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": f"arn:aws:iam::*:role/{READER_ROLE_NAME}",
        },
        {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
        # ...and signing. moto matches KMS, Secrets Manager and DynamoDB actions against "*" only (it
        # knows no resource ARN for them); the template names the keys, the secrets and the table.
        {"Effect": "Allow", "Action": ["kms:Sign", "kms:GetPublicKey"], "Resource": "*"},
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        {"Effect": "Allow", "Action": ["dynamodb:Query", "dynamodb:PutItem"], "Resource": "*"},
    ]
    iam = cast("IAMClient", aws.client_in_account("iam", account))
    issuer = create_user(iam, account, ISSUER_USER_NAME, statements)
    return TokenKeys(
        dataplane_key_alias=DATAPLANE_KEY_ALIAS,
        dataplane_key_arn=dataplane_key,
        zone_key_alias=ZONE_KEY_ALIAS,
        zone_key_arn=zone_key,
        pem_secret_arn=secret_arn,
        revocation_table=REVOCATION_TABLE,
        zone=DEMO_ZONE,
        meshes=DEMO_MESHES,
        issuer=issuer,
        pem=pem,
    )


def token_issuer_environment(world: DemoWorld, keys: TokenKeys, *, server_id: str) -> dict[str, str]:
    """The token issuer handler's environment against this world, as its own least-privilege user."""
    return {
        **verifier_environment(world, server_id=server_id),
        **token_settings(world, keys),
        "AWS_ACCESS_KEY_ID": keys.issuer.access_key_id,
        "AWS_SECRET_ACCESS_KEY": keys.issuer.secret_access_key,
    }


def token_settings(world: DemoWorld, keys: TokenKeys) -> dict[str, str]:
    """What the issuer adds to the verifier's environment: its endpoints, keys, zone and meshes."""
    return {
        "AWS_ENDPOINT_URL_KMS": world.endpoint_url,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": world.endpoint_url,
        "KUMA_IAM_SIGNING_KEYS": keys.signing_keys,
        "KUMA_IAM_ZONE": keys.zone,
        "KUMA_IAM_ZONE_SIGNING_KEYS": f"1={keys.zone_key_alias}",
        "KUMA_IAM_MESHES": ",".join(keys.meshes),
    }


def new_kuma_signing_key() -> str:
    """A fresh key as kumactl and the control plane write them: PKCS#1 `RSA PRIVATE KEY` PEM, 2048 bits."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def create_revocation_table(dynamodb: DynamoDBClient, name: str = REVOCATION_TABLE) -> None:
    """Shaped like the template's RevocationTable: key (jti, scope), index scope-index on (scope, jti)."""
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "jti", "AttributeType": "S"},
            {"AttributeName": "scope", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "jti", "KeyType": "HASH"},
            {"AttributeName": "scope", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": SCOPE_INDEX,
                "KeySchema": [
                    {"AttributeName": "scope", "KeyType": "HASH"},
                    {"AttributeName": "jti", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def _signing_key(kms: KMSClient, alias: str, description: str) -> str:
    key = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY", Description=description)["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return key["Arn"]
