"""Create merchants and keys; read and change payment options."""

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from quittance import clock
from quittance.auth.keys import generate_key, hash_key
from quittance.db.uow import after_commit
from quittance.domain.errors import NotFound
from quittance.domain.ids import new_id
from quittance.merchant.schemas import DEFAULTS, PaymentOptionsUpdate
from quittance.models import ApiKey, Merchant, PaymentOptions
from quittance.payment.routing import ensure_defaults

DEMO_NAME = "Demo Shop"


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


def create_merchant(session: Session, name: str, *, is_demo: bool = False) -> Merchant:
    """Create a merchant with the default payment options."""
    now = clock.now()
    merchant_id = new_id("mer")
    merchant = Merchant(
        id=merchant_id, merchant_id=merchant_id, name=name, is_demo=is_demo, created_at=now
    )
    session.add(merchant)
    session.flush()
    for livemode in (False, True):
        session.add(
            PaymentOptions(merchant_id=merchant_id, livemode=livemode, updated_at=now, **DEFAULTS)
        )
    session.flush()
    ensure_defaults(session, merchant_id, livemode=False)
    return merchant


def get_merchant(session: Session, merchant_id: str) -> Merchant:
    merchant = session.get(Merchant, merchant_id)
    if merchant is None:
        raise MerchantNotFound(f"No merchant {merchant_id!r} exists.")
    return merchant


def demo_merchant(session: Session) -> Merchant | None:
    return session.scalars(select(Merchant).where(Merchant.is_demo.is_(True))).first()


def create_api_key(
    session: Session, merchant_id: str, *, livemode: bool, publishable: bool = False
) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and only its digest is kept."""
    get_merchant(session, merchant_id)
    plain = generate_key(livemode, publishable)
    key = ApiKey(
        id=new_id("key"),
        merchant_id=merchant_id,
        livemode=livemode,
        kind="publishable" if publishable else "secret",
        key_hash=hash_key(plain),
        prefix=plain[:12],
        last4=plain[-4:],
        created_at=clock.now(),
        revoked_at=None,
    )
    session.add(key)
    return key, plain


@dataclass(frozen=True, slots=True)
class OptionsSnapshot:
    """What the hot paths read of the payment options (and the merchant's name)."""

    invoice_lifetime: int
    attempts_limit: int
    return_url: str | None
    descriptor_template: str
    expose_internal_callback_data: bool
    merchant_name: str
    include_commission: bool = False
    refund_commission: bool = False


class _DefaultsCache:
    """Option snapshots per merchant and mode, so hot paths read no settings row.

    A change made through this process is seen at once; other processes see it within
    `ttl` seconds.
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[tuple[str, bool], tuple[float, OptionsSnapshot]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, bool]) -> OptionsSnapshot | None:
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] > time.monotonic() else None

    def put(self, key: tuple[str, bool], value: OptionsSnapshot) -> None:
        with self._lock:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, value)

    def forget(self, key: tuple[str, bool]) -> None:
        with self._lock:
            self._entries.pop(key, None)


_defaults = _DefaultsCache()


def options_snapshot(session: Session, merchant_id: str, livemode: bool) -> OptionsSnapshot:
    """The payment options as the hot paths need them (cached briefly)."""
    key = (merchant_id, livemode)
    cached = _defaults.get(key)
    if cached is not None:
        return cached
    options = get_payment_options(session, merchant_id, livemode)
    merchant = get_merchant(session, merchant_id)
    value = OptionsSnapshot(
        options.invoice_lifetime,
        options.attempts_limit,
        options.return_url,
        options.descriptor_template,
        options.expose_internal_callback_data,
        merchant.name,
        options.include_commission,
        options.refund_commission,
    )
    _defaults.put(key, value)
    return value


def get_payment_options(session: Session, merchant_id: str, livemode: bool) -> PaymentOptions:
    options = session.get(PaymentOptions, (merchant_id, livemode))
    if options is None:  # pragma: no cover - created with the merchant
        raise MerchantNotFound(f"No merchant {merchant_id!r} exists.")
    return options


def update_payment_options(
    session: Session, merchant_id: str, livemode: bool, data: PaymentOptionsUpdate
) -> PaymentOptions:
    # Forget the cached defaults now and once committed, so no reader in between keeps the old.
    _defaults.forget((merchant_id, livemode))
    after_commit(session, lambda: _defaults.forget((merchant_id, livemode)))
    options = session.get(PaymentOptions, (merchant_id, livemode), with_for_update=True)
    if options is None:  # pragma: no cover - created with the merchant
        raise MerchantNotFound(f"No merchant {merchant_id!r} exists.")
    for name in data.model_fields_set:
        setattr(options, name, getattr(data, name))
    options.updated_at = clock.now()
    return options
