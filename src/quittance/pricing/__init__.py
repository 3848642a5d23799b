"""Fee schedules and exchange rates: what commission costs and what currencies are worth."""
