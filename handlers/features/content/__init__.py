"""Own content first: the content library and the lookup over it (SPEC §5.4)."""
