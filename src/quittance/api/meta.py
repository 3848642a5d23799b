"""Endpoints about the service itself: the status table, liveness and readiness."""

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import Response

from quittance.api.deps import DbDep
from quittance.api.responses import dumps, json_response
from quittance.domain.invoice import STATUSES, TRANSITIONS
from quittance.errors import problem_body, problem_response

router = APIRouter(tags=["meta"])


def status_table() -> dict[str, Any]:
    """Render the invoice status and transition tables (DESIGN §3) from the domain data."""
    return {
        "object": "invoice_status_table",
        "statuses": [
            {
                "status": info.status.value,
                "final": info.final,
                "sleeping": info.sleeping,
                "description": info.description,
            }
            for info in STATUSES
        ],
        "transitions": [
            {
                "from": None if t.source is None else t.source.value,
                "to": t.target.value,
                "trigger": t.trigger.value,
                "event": t.event,
            }
            for t in TRANSITIONS
        ],
    }


_STATUS_TABLE = dumps(status_table())


@router.get("/v1/invoice_statuses")
def invoice_statuses() -> Response:
    """The 15 invoice statuses with their final and sleeping flags, and every transition."""
    return json_response(200, _STATUS_TABLE)


@router.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return json_response(200, b'{"status":"ok"}')


@router.get("/readyz")
def readyz(db: DbDep) -> Response:
    """Readiness: the database answers."""
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        body = problem_body(503, "database_unavailable", "Not ready", "The database is down.")
        return problem_response(503, body)
    return json_response(200, dumps({"status": "ready", "database": db.backend}))
