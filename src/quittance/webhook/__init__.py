"""Webhooks: endpoints, the outbox of deliveries, the dispatcher, signatures and the SSRF guard."""
