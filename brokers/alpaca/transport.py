"""An HTTP timeout for alpaca-py's REST client.

`TradingClient` sends every request through its own `requests.Session`
(`client._session`) without a `timeout=`, so a stalled request would block its
thread for ever (alpaca-py#415). Mounting a transport adapter on a session is how
`requests` is configured (the same hook used for retries or pool sizes): this
configures the session object the client owns; no SDK code or module is changed.
"""

from __future__ import annotations

from typing import Any

from alpaca.trading.client import TradingClient
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter


class TimeoutHTTPAdapter(HTTPAdapter):
    """An HTTPAdapter that applies `timeout` (connect and read, in seconds) to every
    request that does not set one itself."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def apply_timeout(client: TradingClient, timeout: float) -> None:
    """Give `client`'s session a timeout for http and https alike."""
    adapter = TimeoutHTTPAdapter(timeout)
    client._session.mount("https://", adapter)
    client._session.mount("http://", adapter)
