"""The AI advisor: analyses and trade ideas for a human to approve. It never trades.

An analyst (OpenAI, or the offline rule-based one) reads a snapshot of the
portfolio and the market and writes an analysis with suggested ideas; every
idea is checked as untrusted input before it is kept; an approved idea becomes
a signal that meets the risk gate like any other. This package cannot import
broker or execution code (an import-linter contract enforces it).
"""
