"""Settings from `QUITTANCE_*` environment variables, read when the app or CLI starts."""

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUITTANCE_", extra="ignore")

    database_url: str = "sqlite:///./quittance.db"
    base_url: str = "http://127.0.0.1:8000"
    env: Literal["development", "test", "production"] = "development"
    secret_key: str = PLACEHOLDER_SECRET
    # Requests whose body is larger than this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=131_072, ge=1024, le=16 * 1024 * 1024)
    # Header a CDN sets with the payer's country (for example `CF-IPCountry`).
    country_header: str = "CF-IPCountry"
    # Seconds the worker sleeps between rounds when there is nothing to do.
    worker_interval: float = Field(default=1.0, gt=0, le=60)
    # Whether `serve` runs the background worker in the same process.
    embedded_worker: bool = True
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> "Settings":
        if self.env == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError("QUITTANCE_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def public_base_url(self) -> str:
        return self.base_url.rstrip("/")
