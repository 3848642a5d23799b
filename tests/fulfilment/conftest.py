"""Fulfilment fixtures: the payment app, sandbox store and server (shared with tests/payment)."""

from tests.payment.conftest import gateway, papi, pay_client, pay_server, pay_settings, sandbox_path

__all__ = ["gateway", "papi", "pay_client", "pay_server", "pay_settings", "sandbox_path"]
