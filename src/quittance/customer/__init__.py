"""Customers and their saved payment methods."""
