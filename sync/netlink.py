"""A TCP link that can be cut: a loopback forwarder standing for the network between a terminal
(or a branch relay) and its server, for the demo's "cut the network" button and for tests.

`CuttableLink` listens on 127.0.0.1 (a free port) and forwards every connection to a target
port. `cut()` drops the open connections and refuses new ones at once (accepted, then closed:
the client sees the server vanish, as on a dead WAN, without waiting out a timeout);
`restore()` lets connections through again. Threads: one acceptor ("<name>-accept") and two
pumps per forwarded connection ("<name>-pump"), all daemons; `cut`, `restore`, `is_up` and
`close` may be called from any thread, and `close` joins every thread in bounded time.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress

#: How long the acceptor blocks in accept() before it looks at `close` again.
_POLL_S = 0.1


class CuttableLink:
    """127.0.0.1:`port` forwarded to `target_host`:`target_port`, up until `cut()`."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1",
                 connect_timeout: float = 5.0, name: str = "netlink") -> None:
        self._target = (target_host, target_port)
        self._connect_timeout = connect_timeout
        self._name = name
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port = int(self._listener.getsockname()[1])
        self._up = threading.Event()
        self._up.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._pumps: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name=f"{name}-accept",
                                          daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        """The HTTP base URL of the target as seen through the link."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        """False between `cut()` and `restore()` (and after `close()`)."""
        return self._up.is_set()

    def cut(self) -> None:
        """Drop every forwarded connection now and refuse new ones until `restore()`."""
        self._up.clear()
        with self._lock:
            dropping = list(self._open)
        self._drop(*dropping)

    def restore(self) -> None:
        """Let new connections through again (dropped ones stay dropped, as after a real cut)."""
        if not self._closing.is_set():
            self._up.set()

    def close(self, timeout: float = 5.0) -> None:
        """Cut, stop accepting and join the threads, waiting `timeout` seconds at most in all
        (the threads are daemons: one still stuck after that does not keep the process alive).
        Idempotent."""
        deadline = time.monotonic() + timeout
        self._closing.set()
        self.cut()
        self._acceptor.join(max(deadline - time.monotonic(), 0))
        self._listener.close()
        with self._lock:
            pumps = list(self._pumps)
        for pump in pumps:
            pump.join(max(deadline - time.monotonic(), 0))

    # -- the acceptor and pump threads ----------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed under us: the link is closing
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=self._connect_timeout)
            except OSError:
                client.close()  # the target is not there: the client sees a dropped connection
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                # `cut` clears `_up` before it takes the lock: a connection added here is
                # either dropped by it or sees the cut now.
                up = self._up.is_set()
                if up:
                    self._open |= {client, server}
                    self._pumps = [p for p in self._pumps if p.is_alive()]
            if not up:
                self._drop(client, server)
                continue
            for src, dst in ((client, server), (server, client)):
                pump = threading.Thread(target=self._pump, args=(src, dst),
                                        name=f"{self._name}-pump", daemon=True)
                with self._lock:
                    self._pumps.append(pump)
                pump.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass  # the other direction or `cut` closed the pipe: that is how a pipe ends here
        finally:
            self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for s in socks:
            with self._lock:
                self._open.discard(s)
            with suppress(OSError):  # closed already by the other side
                s.shutdown(socket.SHUT_RDWR)
            s.close()
