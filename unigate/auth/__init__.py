"""Client authentication and roles."""
