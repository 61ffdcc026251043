"""The background loops: inbox processing and outbox dispatch."""
