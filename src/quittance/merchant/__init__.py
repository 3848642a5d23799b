"""Merchants, their API keys and payment options."""
