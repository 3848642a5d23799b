"""Pricing fixtures: the payment app and its sandbox store (shared with tests/payment)."""

from tests.payment.conftest import gateway, papi, pay_client, pay_settings, sandbox_path

__all__ = ["gateway", "papi", "pay_client", "pay_settings", "sandbox_path"]
