"""Helpers the test folders share, in one place instead of a copy per folder.

`market` holds the session times, tick builders and price paths; `aapl` the AAPL
path the advisor is asked about; `calls` how a test calls the service and reads
a failed call; `state` what a refused request must leave unchanged; `polling`
waiting for something the service does in the background; `databases` the audit
databases a test runs on; `tools` the repository and the virtualenv's programs.
"""
