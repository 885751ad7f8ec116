"""The RPC fuzzer: requests generated from the service descriptor (issue 8)."""
