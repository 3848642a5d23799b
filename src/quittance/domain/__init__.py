"""Pure payment rules: no web, database or network imports live here."""
