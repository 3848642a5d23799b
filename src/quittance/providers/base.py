"""The provider protocol (DESIGN §9).

Every call carries Quittance's own id as the provider's idempotency key (the payment's for
an authorisation, the refund's for a refund, the delivery's or cancellation's for a capture or
a release), so a retry after a crash or a timeout never charges, captures or releases twice,
and the provider can be asked later what became of each call. A `ProviderError` (the provider failed
or did not answer) lets routing try the next connection; a declined result ends the attempt.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # money captured
    AUTHORIZED = "authorized"  # money reserved, captured later (on delivery)
    PENDING = "pending"  # the answer comes later (a bank transfer, a slow acquirer)
    REQUIRES_ACTION = "requires_action"  # the payer must pass a challenge first
    DECLINED = "declined"  # the payment failed for good


class ProviderError(Exception):
    """The provider failed or timed out; another connection may be tried."""

    def __init__(self, message: str, *, code: str = "provider_error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    payment_id: str  # the idempotency key at the provider
    amount: int
    currency: str
    method: str  # "card", "bank_transfer" or "invoice"
    token: str | None  # the saved method's provider token
    descriptor: str
    options: dict[str, Any] = field(default_factory=dict)  # the connection's settings


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: Outcome
    reference: str  # the provider's own id for the payment
    amount_received: int = 0  # minor units received so far (captured, or transferred)
    error_code: str | None = None
    error_message: str | None = None
    next_action: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # the provider's answer, for events


@dataclass(frozen=True, slots=True)
class CardDetails:
    number: str
    exp_month: int
    exp_year: int
    cvc: str


@dataclass(frozen=True, slots=True)
class Tokenized:
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class Provider(Protocol):
    name: str

    def authorize(self, request: PaymentRequest) -> PaymentResult:
        """Start a payment (capturing at once unless the method captures on delivery)."""
        ...

    def status(self, payment_id: str) -> PaymentResult | None:
        """Ask what became of a payment; None when the provider never saw it."""
        ...

    def capture(self, payment_id: str, amount: int, operation_id: str) -> PaymentResult:
        """Capture an authorised payment (all of it or part) once per `operation_id`.

        Asking again with the same operation id returns the first answer and captures nothing
        more; a refusal raises `ProviderError` and is not remembered.
        """
        ...

    def cancel(self, payment_id: str, amount: int, operation_id: str) -> PaymentResult:
        """Release an authorisation (all of it or part) once per `operation_id`."""
        ...

    def operation_status(self, operation_id: str) -> PaymentResult | None:
        """The answer a capture or release gave; None when the provider never carried it out."""
        ...

    def refund(self, refund_id: str, payment_id: str, amount: int) -> PaymentResult:
        """Send money back for a captured payment."""
        ...

    def refund_status(self, refund_id: str) -> PaymentResult | None:
        """Ask what became of a refund; None when the provider never saw it."""
        ...
