"""Pieces every API resource shares: request context, dependencies, schema types, responses."""
