"""One module per feature: pure decisions plus the thin I/O that applies them."""
