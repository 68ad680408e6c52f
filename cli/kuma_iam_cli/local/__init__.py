"""Local stand-ins for AWS: an embedded moto server, its demo world, an API Gateway-like HTTP front."""
