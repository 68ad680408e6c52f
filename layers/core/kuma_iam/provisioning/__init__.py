"""The ECS token provisioner: Kong Mesh's ECS token controller, serverless and event-driven. Tasks tagged
kuma.io/service in the served clusters get a dataplane token in their service's secret, after their role was
checked against the tag."""
