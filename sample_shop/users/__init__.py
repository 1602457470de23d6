"""users: registration, login (short-lived HS256 JWT) and profile."""
