"""The fast lane of `POST /v1/invoices/{invoice_id}/pay` (see `api/fast_lane.py`).

Besides the checks every lane makes, it takes the invoice id from the path as the route's
pattern does (one segment), and an empty body as the route does (no body: the customer's
default method). What it serves runs the route's own `pay`.
"""

from starlette.types import Receive, Scope, Send

from quittance.api.fast_lane import FastLane
from quittance.payment.endpoints import pay
from quittance.payment.schemas import PayRequest

PREFIX, SUFFIX = "/v1/invoices/", "/pay"


class PayLane(FastLane):
    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], body: bytes
    ) -> bool:
        invoice_id = scope["path"][len(PREFIX) : -len(SUFFIX)]
        if not invoice_id or "/" in invoice_id:
            return False
        run = await self.request(scope, headers, body)
        if run is None:
            return False
        data = None
        if body:
            data = self.body(PayRequest, body)
            if data is None:
                return False
        country = headers.get(self.settings.country_header.lower())
        return await self.answer(
            scope, receive, send, lambda: pay(run, invoice_id, data, self.settings, country)
        )
