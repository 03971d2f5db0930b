"""Ingestion into the canonical event schema, the working-day clock, and features."""
