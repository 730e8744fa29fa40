"""datasette_plugins: see issues; not built yet."""
