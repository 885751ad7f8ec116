"""The deterministic core: one sequencer, synchronous engines, an injected clock."""
