"""Quittance: a self-hosted payment-invoice server."""

__version__ = "0.1.0"
