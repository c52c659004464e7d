"""Durable storage: the outbox (the single durable truth of what goes upstream) and the state store."""
