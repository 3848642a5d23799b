"""The fast lane of `POST /v1/invoices` (see `api/fast_lane.py`): the everyday create.

Besides the checks every lane makes, it passes on a saved customer's id (reading the customer
is the route's). What it serves runs the route's own `create` with the same handler.
"""

from starlette.types import Receive, Scope, Send

from quittance.api.fast_lane import FastLane
from quittance.invoice.endpoints import create
from quittance.invoice.schemas import InvoiceCreate


class CreateInvoiceLane(FastLane):
    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], body: bytes
    ) -> bool:
        run = await self.request(scope, headers, body)
        if run is None:
            return False
        data = self.body(InvoiceCreate, body)
        if data is None or isinstance(data.customer, str):
            return False
        base_url = self.settings.public_base_url
        return await self.answer(scope, receive, send, lambda: create(run, data, base_url))
