"""Invoices: create, read, list, update drafts, finalize, cancel, expire."""
