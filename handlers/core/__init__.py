"""What every feature shares: events in, the context, the registry."""
