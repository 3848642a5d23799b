"""ORM tables, one per module; importing this package registers them all on `Base.metadata`."""

from quittance.models.api_key import ApiKey
from quittance.models.cancellation import Cancellation
from quittance.models.customer import Customer
from quittance.models.delivery import Delivery
from quittance.models.event import Event
from quittance.models.exchange_rate import ExchangeRate
from quittance.models.fee_schedule import FeeSchedule
from quittance.models.idempotency_key import IdempotencyKey
from quittance.models.invoice import Invoice
from quittance.models.invoice_line_item import InvoiceLineItem
from quittance.models.ledger_entry import LedgerEntry
from quittance.models.ledger_transaction import LedgerTransaction
from quittance.models.merchant import Merchant
from quittance.models.method_config import MethodConfig
from quittance.models.payment import Payment
from quittance.models.payment_method import PaymentMethod
from quittance.models.payment_options import PaymentOptions
from quittance.models.provider_connection import ProviderConnection
from quittance.models.refund import Refund
from quittance.models.webhook_attempt import WebhookAttempt
from quittance.models.webhook_delivery import WebhookDelivery
from quittance.models.webhook_endpoint import WebhookEndpoint

__all__ = [
    "ApiKey",
    "Cancellation",
    "Customer",
    "Delivery",
    "Event",
    "ExchangeRate",
    "FeeSchedule",
    "IdempotencyKey",
    "Invoice",
    "InvoiceLineItem",
    "LedgerEntry",
    "LedgerTransaction",
    "Merchant",
    "MethodConfig",
    "Payment",
    "PaymentMethod",
    "PaymentOptions",
    "ProviderConnection",
    "Refund",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
