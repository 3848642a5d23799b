"""Method configuration, provider connections, and an invoice's pay options."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["payment settings"])
