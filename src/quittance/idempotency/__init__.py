"""`Idempotency-Key` handling for every POST and PATCH (DESIGN §5)."""
