"""kuma-iam: IAM-role based authorization for Kuma / Kong Mesh sidecars on Amazon ECS."""

__version__ = "0.1.0"
