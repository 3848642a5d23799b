"""Cancellations and deliveries: releasing and capturing authorisations (DESIGN §4)."""
