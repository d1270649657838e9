"""Enqueueing billing's own notices from domain code (the lazy, on-commit enqueue DESIGN.md allows services)."""
