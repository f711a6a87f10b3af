"""Event store backends: memory (tests), SQLite (the embedded default), PostgreSQL (production)."""
