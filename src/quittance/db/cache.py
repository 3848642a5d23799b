"""Short-lived caches of per-merchant settings the hot paths read (routing, fee schedules).

Values are kept per merchant and mode, under a key of the caller's choosing, for `ttl` seconds.
A row of a watched model written through this process forgets the merchant's values when it
is flushed and again once committed, and a value read before such a change is never stored
after it (the generation check). A transaction that wrote a watched row never stores what it
reads (it may roll back). Other processes see a change within `ttl` seconds, as with the
payment options and API keys.
"""

import threading
import time
from typing import Any, Final, Generic, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, object_session

from quittance.db.uow import after_commit

V = TypeVar("V")

MISSING: Final[Any] = object()  # what `get` answers for a value it does not hold


class MerchantCache(Generic[V]):
    """Values per merchant, mode and key, forgotten whenever a watched model is written."""

    def __init__(self, name: str, *watched: type[Any], ttl: float = 5.0, size: int = 10_000):
        self.ttl = ttl
        self.size = size
        self.generation = 0
        self._changed = f"quittance_cache_changed_{name}"  # key in `session.info`
        self._entries: dict[tuple[str, bool], tuple[float, dict[Any, V]]] = {}
        self._lock = threading.Lock()
        for model in watched:
            for when in ("after_insert", "after_update", "after_delete"):
                sa_event.listen(model, when, self._written)

    def get(self, merchant_id: str, livemode: bool, key: Any) -> V | Any:
        """The value held for `key`, or `MISSING`."""
        entry = self._entries.get((merchant_id, livemode))
        if entry is None or entry[0] <= time.monotonic():
            return MISSING
        return entry[1].get(key, MISSING)

    def put(
        self, session: Session, merchant_id: str, livemode: bool, key: Any, value: V,
        generation: int,
    ) -> None:  # fmt: skip
        """Keep `value`, read in `session` when the cache was at `generation`."""
        if self._changed in session.info:  # never cache what this transaction has not committed
            return
        with self._lock:
            if generation != self.generation:
                return  # something changed while it was being read
            entry = self._entries.get((merchant_id, livemode))
            if entry is None or entry[0] <= time.monotonic():
                if len(self._entries) >= self.size:
                    self._entries.clear()
                entry = self._entries[(merchant_id, livemode)] = (time.monotonic() + self.ttl, {})
            entry[1][key] = value

    def written_in(self, session: Session) -> bool:
        """Whether `session`'s transaction has written a watched row (so it must read its own
        view, never this process-wide one)."""
        return self._changed in session.info

    def forget(self, merchant_id: str, livemode: bool) -> None:
        with self._lock:
            self.generation += 1
            self._entries.pop((merchant_id, livemode), None)

    def _written(self, _mapper: object, _connection: object, target: Any) -> None:
        merchant_id, livemode = target.merchant_id, target.livemode
        self.forget(merchant_id, livemode)
        session = object_session(target)
        if session is not None:
            session.info[self._changed] = True
            after_commit(session, lambda: self.forget(merchant_id, livemode))
