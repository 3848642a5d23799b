"""Providers by name, built from settings (`sandbox` today, `ratepay` later)."""

import threading

from quittance.config import Settings
from quittance.domain.errors import QuittanceError
from quittance.providers.base import Provider
from quittance.providers.sandbox import SandboxGateway

PROVIDERS = ("sandbox",)
_cache: dict[tuple[str, str, float], Provider] = {}
_lock = threading.Lock()


class ProviderNotAvailable(QuittanceError):
    status = 422
    code = "provider_not_available"
    title = "Provider not available"


def sandbox(settings: Settings) -> SandboxGateway:
    provider = get_provider("sandbox", settings, livemode=False)
    assert isinstance(provider, SandboxGateway)
    return provider


def get_provider(name: str, settings: Settings, *, livemode: bool) -> Provider:
    """Return the adapter for `name`; the sandbox serves test mode only."""
    if name == "sandbox" and livemode:
        raise ProviderNotAvailable("The sandbox provider takes test-mode payments only.")
    key = (name, settings.sandbox_path, settings.provider_timeout)
    with _lock:
        provider = _cache.get(key)
        if provider is None:
            if name != "sandbox":
                raise ProviderNotAvailable(f"No provider named {name!r} is installed.")
            provider = SandboxGateway(settings.sandbox_path, timeout=settings.provider_timeout)
            _cache[key] = provider
    return provider
