"""The headers the AWS SDKs for Go (v1, v2) put on a signed GetCallerIdentity, beside Host, X-Amz-* and
Authorization: a token signed in either shape must still pass every check."""

from __future__ import annotations

GO_SDK_V1_HEADERS = (
    ("Content-Length", "43"),
    ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
    ("User-Agent", "aws-sdk-go/1.55.5 (go1.22.5; linux; amd64)"),
)
GO_SDK_V2_HEADERS = (
    ("Accept-Encoding", "identity"),
    ("Amz-Sdk-Invocation-Id", "5f0b1f5c-1c51-4d6b-9f3e-3a4b1f7a2c11"),
    ("Amz-Sdk-Request", "attempt=1; max=3"),
    ("Content-Length", "43"),
    ("Content-Type", "application/x-www-form-urlencoded"),
    (
        "User-Agent",
        "aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/sts#1.30.3",
    ),
    ("X-Amz-User-Agent", "aws-sdk-go-v2/1.30.3"),
)
