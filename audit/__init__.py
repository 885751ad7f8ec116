"""The append-only, hash-chained audit log (the event store)."""
