"""Broker adapters. Only engines.execution may import this package (import-linter)."""
