"""Versioned prompt files. A prompt is never edited in place: a change is a new
file (`advisor_v2.md`), so every analysis in the audit log names the exact text
that produced it."""
