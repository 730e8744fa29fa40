"""dialer_core: see issues; not built yet."""
