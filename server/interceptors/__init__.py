"""Cross-cutting concerns of every RPC, in one chain: see chain.py for the order."""
