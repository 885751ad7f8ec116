"""Messages and stubs generated from protos/trading/v1 by `make proto` (package trading.v1)."""
