"""Payment provider adapters: plain data in and out, never the database."""
