"""A loopback TCP proxy that tests can cut, to play a database or server going away.

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/db"
        ...
        proxy.cut()       # every connection drops, new ones are refused
        proxy.restore()   # accepting again, on the same port

Plain threads and blocking sockets: two pump threads per connection is
plenty for tests, and it behaves the same under any event loop the code under
test may run. Linux semantics are assumed (shutdown() wakes a blocked accept()).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


def _close(sock: socket.socket) -> None:
    # shutdown first: it wakes a thread blocked in recv()/accept() on this socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to (target_host, target_port) until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._swallow_reply_from: socket.socket | None = None
        self._trigger: bytes | None = None
        self._listener: socket.socket | None = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._accept_in_background(self._listener)

    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # restore() binds the port again while cut connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        return listener

    def _accept_in_background(self, listener: socket.socket) -> None:
        threading.Thread(
            target=self._accept_loop, args=(listener,), daemon=True, name=f"tcp-proxy-{self.port}"
        ).start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut() or close() shut the listener
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut while we were connecting
                    client.close()
                    upstream.close()
                    continue
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, source is client), daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_target: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if to_target and self._trigger is not None and self._trigger in data:
                        self._trigger = None
                        self._swallow_reply_from = sink
                    swallow = not to_target and self._swallow_reply_from is source
                if swallow:
                    self.cut()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections -= {source, sink}
            _close(source)
            _close(sink)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until restore()."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
            self._swallow_reply_from = None
        if listener is not None:
            _close(listener)
        for sock in connections:
            _close(sock)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        with self._lock:
            if self._listener is not None:
                return
            self._listener = self._listen(self.port)
            listener = self._listener
        self._accept_in_background(listener)

    def cut_before_reply_to(self, pattern: bytes) -> None:
        """The next client request containing `pattern` reaches the target, but its
        reply does not: the proxy cuts instead. The request took effect and the
        client cannot know it (say, a COMMIT whose acknowledgement is lost)."""
        with self._lock:
            self._trigger = pattern

    def close(self) -> None:
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
