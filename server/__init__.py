"""The gRPC edge: servicer, auth, validation, translation, wiring, entry point."""
