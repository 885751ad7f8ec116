"""The trading service's command line (tradectl), backtests and demo.

The SDK they use is its own distribution, built from this folder's
pyproject.toml: the import root ``trading_sdk`` (client/trading_sdk/).
"""
