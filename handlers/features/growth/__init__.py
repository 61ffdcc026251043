"""Growth attribution: who brought whom, what came of it, and lead marks."""
