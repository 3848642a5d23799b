"""Worker fixtures: the payment app and its sandbox store (tests/payment), the webhook app and
its loopback receiver (tests/webhook)."""

from tests.payment.conftest import gateway, papi, pay_client, pay_settings, sandbox_path
from tests.webhook.conftest import hook_api, hook_client, hook_settings, receiver

__all__ = [
    "gateway",
    "hook_api",
    "hook_client",
    "hook_settings",
    "papi",
    "pay_client",
    "pay_settings",
    "receiver",
    "sandbox_path",
]
