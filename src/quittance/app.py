"""The FastAPI application factory."""

from fastapi import FastAPI

from quittance import __version__
from quittance.api import meta
from quittance.api.middleware import RequestMiddleware
from quittance.auth.dependencies import KeyCache
from quittance.config import Settings
from quittance.customer import endpoints as customer_endpoints
from quittance.db.uow import Database
from quittance.errors import install_handlers
from quittance.event import endpoints as event_endpoints
from quittance.fulfilment import endpoints as fulfilment_endpoints
from quittance.invoice import endpoints as invoice_endpoints
from quittance.invoice.fast_lane import CreateInvoiceLane
from quittance.ledger import endpoints as ledger_endpoints
from quittance.merchant import endpoints as merchant_endpoints
from quittance.payment import config_endpoints as payment_config_endpoints
from quittance.payment import endpoints as payment_endpoints
from quittance.payment.fast_lane import PayLane
from quittance.pricing import endpoints as pricing_endpoints
from quittance.refund import endpoints as refund_endpoints
from quittance.webhook import endpoints as webhook_endpoints

DESCRIPTION = """
Quittance is a self-hosted payment-invoice server. Authenticate with
`Authorization: Bearer qk_test_…`. Amounts are integers of the currency's minor unit.
Errors are RFC 9457 problem documents with a stable `code`. Every POST and PATCH accepts an
`Idempotency-Key` header.
"""


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the app; `db` may be shared with an embedded worker."""
    settings = settings or Settings()
    app = FastAPI(
        title="Quittance",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        telemetry={
            "tracing": settings.opentelemetry,
            "metrics": settings.opentelemetry,
            "logs": settings.opentelemetry,
        },
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)
    app.state.key_cache = KeyCache()
    install_handlers(app)
    fast_lanes = {
        ("POST", "/v1/invoices"): CreateInvoiceLane(app.state),
        ("POST", "/v1/invoices/{}/pay"): PayLane(app.state),
    }
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        fast_lanes=fast_lanes if settings.fast_lane else None,
    )
    app.include_router(meta.router)
    app.include_router(invoice_endpoints.router)
    app.include_router(invoice_endpoints.test_helpers)
    app.include_router(event_endpoints.router)
    app.include_router(merchant_endpoints.router)
    app.include_router(webhook_endpoints.router)
    app.include_router(payment_endpoints.router)
    app.include_router(payment_endpoints.test_helpers)
    app.include_router(payment_config_endpoints.router)
    app.include_router(pricing_endpoints.router)
    app.include_router(customer_endpoints.router)
    app.include_router(ledger_endpoints.router)
    app.include_router(refund_endpoints.router)
    app.include_router(fulfilment_endpoints.router)
    app.include_router(refund_endpoints.test_helpers)
    return app
