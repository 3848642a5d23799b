"""`/v1/customers` and their payment methods."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["customers"])
