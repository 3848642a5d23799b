"""Payment methods: tokenised ways to pay, saved on a customer or given inline."""
