"""The built-in `sandbox` provider (test mode only): outcomes chosen by magic values.

It simulates a provider with state of its own, kept in a small SQLite file of its own (never
Quittance's database): a charge is recorded under Quittance's payment id, so asking again with
the same id returns the first answer instead of charging twice, and `status` can tell what
happened to a payment whose answer was lost in a crash. Card numbers and security codes are
never stored, here or anywhere: a token (`tok_sandbox_<behaviour>_<random>`) carries only the
card's behaviour, and the payment method row its brand, last four digits and expiry.

Cards: 4242424242424242 (also 5555555555554444, 378282246310005) succeeds; 4000000000000002
is declined; 4000000000009995 has insufficient funds; 4000000000003220 needs a challenge;
4000000000000259 is pending, then settles; 4000000000000119 fails with a provider error.
Bank transfer: pending until transfers of any amount arrive. Invoice: authorised now, captured
on delivery. Connection options: `{"fail": "error" | "timeout"}` makes every call through the
connection fail, `{"delay_ms": N}` answers after N ms (the charge is recorded first),
`{"settle_after_ms": N}` sets when pending cards settle (default 2000).
Refunds: an amount ending in 01 minor units stays pending (until a test helper settles or fails
it), one ending in 02 fails, any other succeeds; each is recorded once under its refund id.
Captures and releases of an authorisation are recorded once under their operation id (the
delivery's or cancellation's id) with the answer they gave: the same id again returns that
answer and moves nothing, the same id for a different request is refused
(`operation_id_reused`), and `operation_status` tells what became of one whose answer was lost.
"""

import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quittance.domain.payment import luhn_valid
from quittance.providers.base import (
    CardDetails,
    Outcome,
    PaymentRequest,
    PaymentResult,
    ProviderError,
    Tokenized,
)

CARDS: dict[str, tuple[str, str]] = {  # number: (behaviour, brand)
    "4242424242424242": ("succeed", "visa"),
    "5555555555554444": ("succeed", "mastercard"),
    "378282246310005": ("succeed", "amex"),
    "4000000000000002": ("decline", "visa"),
    "4000000000009995": ("insufficient_funds", "visa"),
    "4000000000003220": ("challenge", "visa"),
    "4000000000000259": ("pending", "visa"),
    "4000000000000119": ("provider_error", "visa"),
}
_BEHAVIOURS = frozenset(behaviour for behaviour, _ in CARDS.values())
_TOKEN_PREFIX = "tok_sandbox_"
DECLINES = {
    "decline": ("card_declined", "The card was declined."),
    "insufficient_funds": ("insufficient_funds", "The card has insufficient funds."),
    "challenge_failed": ("authentication_failed", "The payer did not pass the challenge."),
    "settle_failed": ("payment_failed", "The provider reported the payment as failed."),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY, kind TEXT NOT NULL, behaviour TEXT NOT NULL, brand TEXT,
    last4 TEXT, exp_month INTEGER, exp_year INTEGER, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS charges (
    payment_id TEXT PRIMARY KEY, reference TEXT NOT NULL UNIQUE, token TEXT, method TEXT NOT NULL,
    amount INTEGER NOT NULL, currency TEXT NOT NULL, state TEXT NOT NULL,
    amount_received INTEGER NOT NULL DEFAULT 0, amount_captured INTEGER NOT NULL DEFAULT 0,
    amount_cancelled INTEGER NOT NULL DEFAULT 0, amount_refunded INTEGER NOT NULL DEFAULT 0,
    settle_at REAL, error TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    operation_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, kind TEXT NOT NULL,
    amount INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS authorization_operations (
    operation_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, kind TEXT NOT NULL,
    amount INTEGER NOT NULL, state TEXT NOT NULL, amount_received INTEGER NOT NULL,
    amount_captured INTEGER NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, reference TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL, state TEXT NOT NULL, created_at TEXT NOT NULL);
"""


class SandboxError(ValueError):
    """A request the sandbox refuses (an unknown card, an expired one)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SandboxGateway:
    """The provider side of the sandbox, with its own durable store."""

    name = "sandbox"

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = str(path)
        self.timeout = timeout
        self._init_lock = threading.Lock()
        self._ready = False
        self._local = threading.local()  # one connection per thread, opened once
        # Threads queue here instead of sleeping in SQLite's busy handler (as db/uow.py does).
        self._write_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a commit survives
            # the process dying (what the recovery points are about), only a power loss may
            # take back the last ones. Two fsyncs per pay were most of the sandbox's cost.
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            if not self._ready:
                with self._init_lock:
                    connection.executescript(_SCHEMA)
                    self._ready = True
            self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def _store(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        with self._write_lock:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    # -- tokenisation -----------------------------------------------------------------------

    def tokenize_card(self, card: CardDetails, now: datetime | None = None) -> Tokenized:
        """Exchange test card details for a token; the number and code are not kept."""
        number = card.number.replace(" ", "")
        if not luhn_valid(number):
            raise SandboxError("invalid_card_number", "The card number is not valid.")
        if number not in CARDS:
            raise SandboxError(
                "card_not_supported_in_sandbox",
                "The sandbox accepts its test card numbers only; see docs/payments.md.",
            )
        if not (card.cvc.isdigit() and len(card.cvc) in (3, 4)):
            raise SandboxError("invalid_cvc", "The security code is 3 or 4 digits.")
        current = now or datetime.now(UTC)
        if not 1 <= card.exp_month <= 12 or (card.exp_year, card.exp_month) < (
            current.year,
            current.month,
        ):
            raise SandboxError("expired_card", "The card has expired.")
        behaviour, brand = CARDS[number]
        # The token carries the card's behaviour (nothing else): tokenising writes nothing.
        token = f"{_TOKEN_PREFIX}{behaviour}_{secrets.token_hex(12)}"
        return Tokenized(token, brand, number[-4:], card.exp_month, card.exp_year)

    # -- payments ---------------------------------------------------------------------------

    def authorize(self, request: PaymentRequest) -> PaymentResult:
        options = request.options
        if options.get("fail") == "error":
            raise ProviderError("The sandbox connection is configured to fail.")
        if options.get("fail") == "timeout":
            raise ProviderError("The sandbox connection timed out.", code="provider_timeout")
        connection = self._connection()
        behaviour = self._behaviour(connection, request)
        if behaviour == "provider_error":
            raise ProviderError("The sandbox acquirer had a processing error.")
        state, error, settle_at = self._initial_state(behaviour, request)
        with self._write_lock:
            # One statement, atomic on its own: the charge, unless the payment has one already
            # (the idempotency key), in which case that one is the answer, unchanged.
            rows = connection.execute(
                "INSERT INTO charges (payment_id, reference, token, method, amount, currency,"
                " state, amount_received, amount_captured, settle_at, error, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (payment_id) DO NOTHING RETURNING *",
                (request.payment_id, "sbx_" + secrets.token_hex(10), request.token,
                 request.method, request.amount, request.currency, state,
                 request.amount if state == "succeeded" else 0,
                 request.amount if state == "succeeded" else 0, settle_at, error,
                 datetime.now(UTC).isoformat()),
            ).fetchall()  # fmt: skip
            if not rows:
                rows = connection.execute(
                    "SELECT * FROM charges WHERE payment_id = ?", (request.payment_id,)
                ).fetchall()
        result = _result(rows[0])
        delay = float(options.get("delay_ms", 0)) / 1000
        if delay:
            # The charge is recorded; the answer is slow (or lost, if Quittance dies now).
            time.sleep(min(delay, self.timeout))
            if delay > self.timeout:
                raise ProviderError("The sandbox did not answer in time.", code="provider_timeout")
            settled = self.status(request.payment_id)
            assert settled is not None
            return settled
        return result

    @staticmethod
    def _behaviour(store: sqlite3.Connection, request: PaymentRequest) -> str:
        if request.method == "bank_transfer":
            return "bank_transfer"
        if request.method == "invoice":
            return "invoice"
        if request.token is None:
            raise ProviderError("A card payment needs a token.", code="invalid_request")
        behaviour, _, nonce = request.token.removeprefix(_TOKEN_PREFIX).rpartition("_")
        if request.token.startswith(_TOKEN_PREFIX) and behaviour in _BEHAVIOURS and nonce:
            return behaviour
        # Tokens made before they carried their behaviour were stored.
        row = store.execute(
            "SELECT behaviour FROM tokens WHERE token = ?", (request.token,)
        ).fetchone()
        if row is None:
            raise ProviderError("The sandbox does not know this token.", code="invalid_request")
        return str(row["behaviour"])

    @staticmethod
    def _initial_state(
        behaviour: str, request: PaymentRequest
    ) -> tuple[str, str | None, float | None]:
        if behaviour == "succeed":
            return "succeeded", None, None
        if behaviour in ("decline", "insufficient_funds"):
            return "declined", behaviour, None
        if behaviour == "challenge":
            return "requires_action", None, None
        if behaviour == "pending":
            settle_ms = float(request.options.get("settle_after_ms", 2000))
            return "pending", None, time.time() + settle_ms / 1000
        if behaviour == "bank_transfer":
            return "awaiting_transfer", None, None
        if behaviour == "invoice":
            return "authorized", None, None
        raise ProviderError(f"Unknown sandbox behaviour {behaviour!r}.")

    def status(self, payment_id: str) -> PaymentResult | None:
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            if row is None:
                return None
            if row["state"] == "pending" and row["settle_at"] and row["settle_at"] <= time.time():
                store.execute(
                    "UPDATE charges SET state = 'succeeded', amount_received = amount,"
                    " amount_captured = amount WHERE payment_id = ?",
                    (payment_id,),
                )
                row = store.execute(
                    "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
                ).fetchone()
        return _result(row)

    def resolve(self, payment_id: str, *, succeed: bool) -> PaymentResult:
        """Test helper: settle or fail a pending payment, or pass or fail its challenge."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            if row is None or row["state"] not in ("pending", "requires_action"):
                raise SandboxError(
                    "payment_not_pending", "The sandbox has no pending payment with this id."
                )
            if succeed:
                store.execute(
                    "UPDATE charges SET state = 'succeeded', amount_received = amount,"
                    " amount_captured = amount WHERE payment_id = ?",
                    (payment_id,),
                )
            else:
                error = "challenge_failed" if row["state"] == "requires_action" else "settle_failed"
                store.execute(
                    "UPDATE charges SET state = 'declined', error = ? WHERE payment_id = ?",
                    (error, payment_id),
                )
        result = self.status(payment_id)
        assert result is not None
        return result

    def receive_transfer(self, payment_id: str, amount: int) -> PaymentResult:
        """Test helper: a bank transfer of `amount` arrives for a bank-transfer payment."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            if row is None or row["method"] != "bank_transfer":
                raise SandboxError(
                    "payment_not_bank_transfer", "No bank-transfer payment has this id."
                )
            received = int(row["amount_received"]) + amount
            state = "succeeded" if received >= int(row["amount"]) else "partially_received"
            store.execute(
                "UPDATE charges SET amount_received = ?, amount_captured = ?, state = ?"
                " WHERE payment_id = ?",
                (received, received, state, payment_id),
            )
            store.execute(
                "INSERT INTO operations VALUES (?, ?, 'transfer', ?, ?)",
                ("tr_" + secrets.token_hex(10), payment_id, amount, datetime.now(UTC).isoformat()),
            )
        result = self.status(payment_id)
        assert result is not None
        return result

    def capture(self, payment_id: str, amount: int, operation_id: str) -> PaymentResult:
        """Capture `amount` of an authorisation; the same operation id captures only once."""
        with self._store() as store:
            known = self._known_operation(store, operation_id, "capture", payment_id, amount)
            if known is not None:
                return known
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            if row is None or row["state"] not in ("authorized", "succeeded"):
                raise ProviderError("Nothing authorised to capture.", code="invalid_request")
            open_amount = (
                int(row["amount"]) - int(row["amount_captured"]) - int(row["amount_cancelled"])
            )
            if amount > open_amount:
                raise ProviderError(
                    "The capture exceeds the authorisation.", code="invalid_request"
                )
            captured = int(row["amount_captured"]) + amount
            state = "succeeded" if captured + int(row["amount_cancelled"]) >= int(row["amount"]) \
                else "authorized"  # fmt: skip
            store.execute(
                "UPDATE charges SET amount_captured = ?, amount_received = ?, state = ?"
                " WHERE payment_id = ?",
                (captured, captured, state, payment_id),
            )
            return self._record_operation(store, operation_id, "capture", payment_id, amount)

    def cancel(self, payment_id: str, amount: int, operation_id: str) -> PaymentResult:
        """Release `amount` of an authorisation; the same operation id releases only once."""
        with self._store() as store:
            known = self._known_operation(store, operation_id, "cancel", payment_id, amount)
            if known is not None:
                return known
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            if row is None or row["state"] != "authorized":
                raise ProviderError("Nothing authorised to release.", code="invalid_request")
            cancelled = int(row["amount_cancelled"]) + amount
            state = "cancelled" if cancelled >= int(row["amount"]) else "authorized"
            store.execute(
                "UPDATE charges SET amount_cancelled = ?, state = ? WHERE payment_id = ?",
                (cancelled, state, payment_id),
            )
            return self._record_operation(store, operation_id, "cancel", payment_id, amount)

    def operation_status(self, operation_id: str) -> PaymentResult | None:
        """The answer a capture or release gave; None when the sandbox never carried it out."""
        with self._store() as store:
            operation = store.execute(
                "SELECT * FROM authorization_operations WHERE operation_id = ?", (operation_id,)
            ).fetchone()
            return None if operation is None else _operation_result(store, operation)

    @staticmethod
    def _known_operation(
        store: sqlite3.Connection, operation_id: str, kind: str, payment_id: str, amount: int
    ) -> PaymentResult | None:
        """The first answer to this operation id, if there was one; a different request under
        the same id is refused."""
        operation = store.execute(
            "SELECT * FROM authorization_operations WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        if operation is None:
            return None
        if (operation["kind"], operation["payment_id"], int(operation["amount"])) != (
            kind, payment_id, amount,
        ):  # fmt: skip
            raise SandboxError(
                "operation_id_reused",
                "An operation id names one capture or release, and "
                f"{operation_id!r} was already used for a {operation['kind']} of"
                f" {operation['amount']} on {operation['payment_id']}; a different request"
                " needs a new operation id.",
            )
        return _operation_result(store, operation)

    @staticmethod
    def _record_operation(
        store: sqlite3.Connection, operation_id: str, kind: str, payment_id: str, amount: int
    ) -> PaymentResult:
        """Remember a capture or release and the answer it gave (the charge as it now stands)."""
        charge = store.execute(
            "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
        ).fetchone()
        store.execute(
            "INSERT INTO authorization_operations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (operation_id, payment_id, kind, amount, charge["state"],
             charge["amount_received"], charge["amount_captured"],
             datetime.now(UTC).isoformat()),
        )  # fmt: skip
        return _result(charge)

    def refund(self, refund_id: str, payment_id: str, amount: int) -> PaymentResult:
        """Send money back; asking again with the same refund id returns the first answer."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM refunds WHERE refund_id = ?", (refund_id,)
            ).fetchone()
            if row is None:
                charge = store.execute(
                    "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
                ).fetchone()
                if charge is None:
                    raise ProviderError("The sandbox has no such payment.", code="invalid_request")
                pending = int(store.execute(
                    "SELECT coalesce(sum(amount), 0) FROM refunds"
                    " WHERE payment_id = ? AND state = 'pending'", (payment_id,),
                ).fetchone()[0])  # fmt: skip
                left = int(charge["amount_received"]) - int(charge["amount_refunded"]) - pending
                if not 0 < amount <= left:
                    raise ProviderError(
                        "The refund exceeds what the payment received.", code="invalid_request"
                    )
                magic = amount % 100
                state = "pending" if magic == 1 else "failed" if magic == 2 else "succeeded"
                now = datetime.now(UTC).isoformat()
                store.execute(
                    "INSERT INTO refunds VALUES (?, ?, ?, ?, ?, ?)",
                    (refund_id, payment_id, "sbr_" + secrets.token_hex(10), amount, state, now),
                )
                store.execute(
                    "INSERT INTO operations VALUES (?, ?, 'refund', ?, ?)",
                    (refund_id, payment_id, amount, now),
                )
                if state == "succeeded":
                    store.execute(
                        "UPDATE charges SET amount_refunded = amount_refunded + ?"
                        " WHERE payment_id = ?",
                        (amount, payment_id),
                    )
                row = store.execute(
                    "SELECT * FROM refunds WHERE refund_id = ?", (refund_id,)
                ).fetchone()
        return _refund_result(row)

    def refund_status(self, refund_id: str) -> PaymentResult | None:
        """Ask what became of a refund; None when the sandbox never saw it."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM refunds WHERE refund_id = ?", (refund_id,)
            ).fetchone()
        return None if row is None else _refund_result(row)

    def resolve_refund(self, refund_id: str, *, succeed: bool) -> PaymentResult:
        """Test helper: a pending refund is paid out or fails."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM refunds WHERE refund_id = ?", (refund_id,)
            ).fetchone()
            if row is None or row["state"] != "pending":
                raise SandboxError(
                    "refund_not_pending", "The sandbox has no pending refund with this id."
                )
            store.execute(
                "UPDATE refunds SET state = ? WHERE refund_id = ?",
                ("succeeded" if succeed else "failed", refund_id),
            )
            if succeed:
                store.execute(
                    "UPDATE charges SET amount_refunded = amount_refunded + ? WHERE payment_id = ?",
                    (int(row["amount"]), row["payment_id"]),
                )
        result = self.refund_status(refund_id)
        assert result is not None
        return result

    def charges(self, payment_id: str) -> dict[str, Any] | None:
        """What the provider holds for a payment (for tests and reconciliation)."""
        with self._store() as store:
            row = store.execute(
                "SELECT * FROM charges WHERE payment_id = ?", (payment_id,)
            ).fetchone()
            return None if row is None else dict(row)


_OUTCOMES = {
    "succeeded": Outcome.SUCCEEDED,
    "authorized": Outcome.AUTHORIZED,
    "pending": Outcome.PENDING,
    "awaiting_transfer": Outcome.PENDING,
    "partially_received": Outcome.PENDING,
    "requires_action": Outcome.REQUIRES_ACTION,
    "declined": Outcome.DECLINED,
    "cancelled": Outcome.DECLINED,
}


def _operation_result(store: sqlite3.Connection, operation: sqlite3.Row) -> PaymentResult:
    """A capture's or release's first answer: the charge as it stood right after it."""
    charge = store.execute(
        "SELECT * FROM charges WHERE payment_id = ?", (operation["payment_id"],)
    ).fetchone()
    return _result({**dict(charge), "state": operation["state"],
                    "amount_received": operation["amount_received"],
                    "amount_captured": operation["amount_captured"]})  # fmt: skip


def _result(row: sqlite3.Row | Mapping[str, Any]) -> PaymentResult:
    state = str(row["state"])
    error_code = error_message = None
    if state == "declined":
        error_code, error_message = DECLINES.get(
            str(row["error"]), ("payment_failed", "The payment failed.")
        )
    next_action = None
    if state == "requires_action":
        next_action = {"type": "challenge", "reference": row["reference"]}
    elif state in ("awaiting_transfer", "partially_received"):
        next_action = {
            "type": "bank_transfer",
            "reference": row["reference"],
            "iban": "DE00 0000 0000 SAND BOX0 00",
            "amount_remaining": int(row["amount"]) - int(row["amount_received"]),
        }
    return PaymentResult(
        outcome=_OUTCOMES[state],
        reference=str(row["reference"]),
        amount_received=int(row["amount_received"]),
        error_code=error_code,
        error_message=error_message,
        next_action=next_action,
        raw={"provider": "sandbox", "state": state, "reference": row["reference"],
             "amount_captured": row["amount_captured"]},
    )  # fmt: skip


_REFUND_OUTCOMES = {
    "succeeded": Outcome.SUCCEEDED,
    "pending": Outcome.PENDING,
    "failed": Outcome.DECLINED,
}


def _refund_result(row: sqlite3.Row) -> PaymentResult:
    state = str(row["state"])
    failed = state == "failed"
    return PaymentResult(
        outcome=_REFUND_OUTCOMES[state],
        reference=str(row["reference"]),
        amount_received=int(row["amount"]) if state == "succeeded" else 0,
        error_code="refund_declined" if failed else None,
        error_message="The sandbox declined the refund." if failed else None,
        raw={"provider": "sandbox", "state": state, "reference": row["reference"]},
    )
