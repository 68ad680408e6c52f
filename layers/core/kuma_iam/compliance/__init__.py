"""Tag compliance: IAM events and sweeps -> findings (the verifier's own tag rules, and trust-policy rules),
enforcement, and the outputs findings go to (logs, metrics, SNS, EventBridge, Security Hub)."""
