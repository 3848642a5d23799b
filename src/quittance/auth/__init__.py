"""API keys: generation, hashing and the request's caller."""
