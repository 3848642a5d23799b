"""Settings from `QUITTANCE_*` environment variables, read when the app or CLI starts."""

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUITTANCE_", extra="ignore")

    database_url: str = "sqlite:///./quittance.db"
    base_url: str = "http://127.0.0.1:8000"
    # Production unless said otherwise: it refuses placeholder secrets and private webhook
    # targets. `make run` sets development.
    env: Literal["development", "test", "production"] = "production"
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
    # FastAPI's OpenTelemetry traces, metrics and logs of each request, for a process whose
    # OpenTelemetry SDK is set up (for example by `opentelemetry-instrument`). Off, a request
    # does not even look for a provider.
    opentelemetry: bool = False
    # Serve the everyday `POST /v1/invoices` in its fast lane (see invoice/fast_lane.py);
    # false sends every request through the framework's route.
    fast_lane: bool = True
    # Webhooks. Hosts (names, addresses or networks such as 10.0.0.0/8) that endpoints may
    # target although they are private or loopback; comma-separated in the environment.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = []
    # Seconds one webhook request may take (10 to 15 in production; less in tests).
    webhook_timeout: float = Field(default=10.0, gt=0, le=15)
    # How long a worker owns a delivery it sends; a dead worker's deliveries return after it.
    webhook_lease: timedelta = timedelta(seconds=60)
    # Larger event payloads are sent without `data` (`data_omitted: true`); fetch the event.
    webhook_max_payload_bytes: int = Field(default=262_144, ge=1024, le=16 * 1024 * 1024)
    # An endpoint whose attempts have failed for this long is disabled, and the merchant told.
    webhook_disable_after: timedelta = timedelta(days=5)
    # After a secret rotation, how long the old secret still signs (both signatures are sent).
    webhook_secret_overlap: timedelta = timedelta(hours=24)
    # Seconds the worker waits between looks for due webhooks when idle (the latency floor).
    webhook_poll_interval: float = Field(default=0.2, gt=0, le=60)
    # Endpoints one worker sends to at the same time.
    webhook_concurrency: int = Field(default=8, ge=1, le=64)

    # Payments. Where the sandbox provider keeps its own state ("the provider's side").
    sandbox_path: str = "./quittance-sandbox.db"
    # Seconds one provider call may take before it counts as a timeout (and the next
    # connection is tried).
    provider_timeout: float = Field(default=10.0, gt=0, le=60)
    # An attempt whose answer was never recorded (the process died during the provider call)
    # is looked up at the provider after this many seconds.
    payment_recovery_after: float = Field(default=30.0, gt=0, le=3600)
    # Seconds between the worker's questions to the provider about a pending payment.
    payment_poll_interval: float = Field(default=5.0, gt=0, le=3600)

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator(
        "webhook_lease", "webhook_disable_after", "webhook_secret_overlap", mode="before"
    )
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # Plain numbers in the environment are seconds; ISO 8601 durations (`P5D`) work too.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> "Settings":
        if self.env == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError("QUITTANCE_SECRET_KEY must be set to a real secret in production")
        if self.env == "production" and not 10 <= self.webhook_timeout <= 15:
            raise ValueError("QUITTANCE_WEBHOOK_TIMEOUT must be 10 to 15 seconds in production")
        if self.webhook_lease.total_seconds() < self.webhook_timeout + 1:
            raise ValueError("QUITTANCE_WEBHOOK_LEASE must be longer than the webhook timeout")
        return self

    @property
    def public_base_url(self) -> str:
        return self.base_url.rstrip("/")
