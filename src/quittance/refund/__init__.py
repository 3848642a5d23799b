"""Refunds: money sent back to the payer (DESIGN §4 "Refund")."""
