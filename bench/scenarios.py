"""Benchmark scenarios: a name plus a function that makes one iteration's requests.

A scenario function receives a keep-alive HTTP client, the run's context and the iteration
number `n` (unique across the run, warm-up included, so references and idempotency keys never
repeat). It makes one or more requests with `client.request(...)`, each labelled with a step
name; the client times every request and counts an error when the status is not the expected
one (and then raises `UnexpectedStatus`, which ends the iteration).

To add a scenario (say, a full lifecycle: create, then pay), write an `async def` and decorate
it with `@scenario("name", "what it does")`; `bench/invoices.py --scenarios name` runs it.
A scenario marked `baseline=True` sends requests the bare baseline app can answer too (it
answers every POST with 201), so the baseline is driven with exactly the same bytes.
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
    baseline: bool = False  # whether the bare baseline answers it too


SCENARIOS: dict[str, Scenario] = {}


def scenario(
    name: str, description: str, *, baseline: bool = False
) -> Callable[[ScenarioFn], ScenarioFn]:
    """Register a scenario function under `name`."""

    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in SCENARIOS:
            raise ValueError(f"scenario {name!r} is registered twice")
        SCENARIOS[name] = Scenario(name, description, fn, baseline)
        return fn

    return register


JSON = ("Content-Type", "application/json")


def invoice_body(ctx: Context, n: int) -> bytes:
    return json.dumps(
        {"amount": 1999, "currency": "EUR", "reference": f"bench-{ctx.run_id}-{n}"},
        separators=(",", ":"),
    ).encode()


@scenario("create", "POST /v1/invoices (amount, currency, reference)", baseline=True)
async def create(client: Client, ctx: Context, n: int) -> None:
    await client.request(
        "POST",
        "/v1/invoices",
        label="create",
        expect=201,
        headers=(ctx.auth, JSON),
        body=invoice_body(ctx, n),
    )


@scenario("create_idempotent", "POST /v1/invoices with a new Idempotency-Key each time")
async def create_idempotent(client: Client, ctx: Context, n: int) -> None:
    await client.request(
        "POST",
        "/v1/invoices",
        label="create",
        expect=201,
        headers=(ctx.auth, JSON, ("Idempotency-Key", f"bench-{ctx.run_id}-{n}")),
        body=invoice_body(ctx, n),
    )
