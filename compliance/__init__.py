"""compliance: see issues; not built yet."""
