"""Paying invoices: attempts, routing over provider connections, pending settlement."""
