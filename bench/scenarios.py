"""Benchmark scenarios: a name plus a function that makes one iteration's requests.

A scenario function receives a keep-alive HTTP client, the run's context and the iteration
number `n` (unique across the run, warm-up included, so references and idempotency keys never
repeat). It makes one or more requests with `client.request(...)`, each labelled with a step
name; the client times every request and counts an error when the status is not the expected
one (and then raises `UnexpectedStatus`, which ends the iteration).

An iteration is one *unit* of the scenario (a request for `create`, a lifecycle for
`lifecycle`): the load generator reports units per second and per-unit latency besides the
per-request figures. A scenario that finds an answer wrong in another way than its status (a
payment that did not succeed) raises `ScenarioFailure`, which counts one error and ends the
iteration.

To add a scenario, write an `async def` and decorate it with `@scenario("name", "what it
does")`; `bench/invoices.py --scenarios name` runs it. `target` is the share of the bare
baseline's requests per second its units per second should reach (None: no target). The
`create` scenario is also what the bare baseline is driven with (it answers every POST with
201), so both receive exactly the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class UnexpectedStatus(Exception):
    """A request answered with another status than the scenario expected."""

    def __init__(self, label: str, expected: int, response: Response) -> None:
        super().__init__(f"{label}: expected {expected}, got {response.status}")
        self.response = response


class ScenarioFailure(Exception):
    """An answer had the expected status but the wrong content (counted as one error)."""


class Client(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        label: str,
        expect: int,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
    ) -> Response: ...


@dataclass(frozen=True, slots=True)
class Context:
    api_key: str
    run_id: str  # unique per load-generator process, for idempotency keys and references

    @property
    def auth(self) -> tuple[str, str]:
        return ("Authorization", f"Bearer {self.api_key}")


ScenarioFn = Callable[[Client, Context, int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    run: ScenarioFn
    unit: str = "request"  # what one iteration is
    target: float | None = None  # share of the baseline's requests/s its units/s should reach


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, description: str, *, unit: str = "request", target: float | None = None
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario function under `name`."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS[name] = Scenario(name, description, fn, unit, target)
        return fn

    return register


JSON = ("Content-Type", "application/json")


def invoice_body(ctx: Context, n: int) -> bytes:
    return json.dumps(
        {"amount": 1999, "currency": "EUR", "reference": f"bench-{ctx.run_id}-{n}"},
        separators=(",", ":"),
    ).encode()


@scenario("create", "POST /v1/invoices (amount, currency, reference)", target=0.5)
async def create(client: Client, ctx: Context, n: int) -> None:
    await client.request(
        "POST",
        "/v1/invoices",
        label="create",
        expect=201,
        headers=(ctx.auth, JSON),
        body=invoice_body(ctx, n),
    )


@scenario("create_idempotent", "POST /v1/invoices with a new Idempotency-Key each time", target=0.5)
async def create_idempotent(client: Client, ctx: Context, n: int) -> None:
    await client.request(
        "POST",
        "/v1/invoices",
        label="create",
        expect=201,
        headers=(ctx.auth, JSON, ("Idempotency-Key", f"bench-{ctx.run_id}-{n}")),
        body=invoice_body(ctx, n),
    )


LIFECYCLE_INVOICE = b'{"amount":1999,"currency":"EUR"}'
SUCCEEDING_CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
PAY_WITH_CARD = json.dumps(
    {"payment_method": {"type": "card", "card": SUCCEEDING_CARD}}, separators=(",", ":")
).encode()


def _field(response: Response, label: str, name: str) -> str:
    try:
        document = response.json()
        value = document[name]  # type: ignore[index]
    except (ValueError, TypeError, KeyError) as exc:
        message = f"{label}: no {name!r} in the answer: {response.body[:200]!r}"
        raise ScenarioFailure(message) from exc
    return str(value)


async def _pay(client: Client, ctx: Context, invoice_id: str, body: bytes) -> None:
    paid = await client.request(
        "POST",
        f"/v1/invoices/{invoice_id}/pay",
        label="pay",
        expect=200,
        headers=(ctx.auth, JSON),
        body=body,
    )
    status = _field(paid, "pay", "status")
    if status != "succeeded":
        raise ScenarioFailure(f"pay: payment status {status!r}, expected 'succeeded'")


@scenario(
    "lifecycle",
    "POST /v1/invoices, then POST /v1/invoices/{id}/pay with the succeeding sandbox card",
    unit="lifecycle",
    target=0.15,
)
async def lifecycle(client: Client, ctx: Context, n: int) -> None:
    created = await client.request(
        "POST",
        "/v1/invoices",
        label="create",
        expect=201,
        headers=(ctx.auth, JSON),
        body=LIFECYCLE_INVOICE,
    )
    await _pay(client, ctx, _field(created, "create", "id"), PAY_WITH_CARD)


_SAVED: dict[int, tuple[str, bytes]] = {}  # per connection: (customer id, pay body)


async def _saved_method(client: Client, ctx: Context) -> tuple[str, bytes]:
    """A customer with the succeeding card attached, made once per connection (in warm-up)."""
    saved = _SAVED.get(id(client))
    if saved is None:
        customer = await client.request(
            "POST", "/v1/customers", label="setup", expect=201, headers=(ctx.auth, JSON),
            body=b'{"name":"Bench Payer"}',
        )  # fmt: skip
        customer_id = _field(customer, "setup", "id")
        method = await client.request(
            "POST",
            f"/v1/customers/{customer_id}/payment_methods",
            label="setup",
            expect=201,
            headers=(ctx.auth, JSON),
            body=json.dumps({"type": "card", "card": SUCCEEDING_CARD}).encode(),
        )
        pay_body = json.dumps({"payment_method": _field(method, "setup", "id")}).encode()
        saved = _SAVED[id(client)] = (customer_id, pay_body)
    return saved


@scenario(
    "lifecycle_saved",
    "POST /v1/invoices for a saved customer, then pay with the customer's saved card (pm_…)",
    unit="lifecycle",
    target=0.15,
)
async def lifecycle_saved(client: Client, ctx: Context, n: int) -> None:
    customer_id, pay_body = await _saved_method(client, ctx)
    body = json.dumps(
        {"amount": 1999, "currency": "EUR", "customer": customer_id}, separators=(",", ":")
    ).encode()
    created = await client.request(
        "POST", "/v1/invoices", label="create", expect=201, headers=(ctx.auth, JSON), body=body
    )
    await _pay(client, ctx, _field(created, "create", "id"), pay_body)


# One big invoice per connection, paid in warm-up, then refunded a little at a time. 10 minor
# units per refund: the sandbox leaves amounts ending in 01 pending and fails those in 02.
REFUND_INVOICE = b'{"amount":9000000000,"currency":"EUR"}'
REFUND_BODY = b'{"amount":10}'
_PAID: dict[int, str] = {}  # per connection: the paid invoice it refunds


async def _paid_invoice(client: Client, ctx: Context) -> str:
    invoice_id = _PAID.get(id(client))
    if invoice_id is None:
        created = await client.request(
            "POST", "/v1/invoices", label="setup", expect=201, headers=(ctx.auth, JSON),
            body=REFUND_INVOICE,
        )  # fmt: skip
        invoice_id = _field(created, "setup", "id")
        await _pay(client, ctx, invoice_id, PAY_WITH_CARD)
        _PAID[id(client)] = invoice_id
    return invoice_id


@scenario(
    "refund",
    "POST /v1/invoices/{id}/refunds of 10 minor units on an invoice paid by card (in warm-up)",
    unit="refund",
)
async def refund(client: Client, ctx: Context, n: int) -> None:
    invoice_id = await _paid_invoice(client, ctx)
    refunded = await client.request(
        "POST", f"/v1/invoices/{invoice_id}/refunds", label="refund", expect=201,
        headers=(ctx.auth, JSON), body=REFUND_BODY,
    )  # fmt: skip
    status = _field(refunded, "refund", "status")
    if status != "succeeded":
        raise ScenarioFailure(f"refund: status {status!r}, expected 'succeeded'")
