"""A private, real `pcscd -f` with vsmartcard's vpcd, for the PC/SC tests and bench/tap_latency.py.

Why private, and why in namespaces (docs/pcsc.md has the details):
- Debian's vpcd (vsmartcard 3.3) listens on port 35963 (and 35964 for its second slot) on ALL
  interfaces (INADDR_ANY); reader.conf cannot bind it to 127.0.0.1. Its only other mode ("a
  hostname:port" DEVICENAME: vpcd connects out to the card) crashes pcscd with "bit out of range
  0 - FD_SETSIZE on fd_set" as soon as a card goes away. So pcscd runs in its own network
  namespace, where the only interface is a loopback: its port is reachable from nowhere else.
- pcscd 1.9.9 always uses /run/pcscd/pcscd.comm and /run/pcscd/pcscd.pid, and refuses to start
  when another pcscd owns them. So pcscd also runs in its own mount namespace with a directory
  of ours bind-mounted on /run/pcscd. A system pcscd (CI may run one) is neither disturbed nor
  used, and our pcscd can be killed and restarted at will.

Clients reach our pcscd by `PCSCLITE_CSOCK_NAME`. libpcsclite reads it once per process, at
its first call — and an earlier test in the same pytest process may already have made that call
with the default socket (`cardpos devices list` does). So PC/SC clients run in child processes:
`ReaderProcess` runs a `PcscReader` in a spawned interpreter and sends its events back over a
queue; `Pcscd.env` is the environment for any other client process. A card (the test
process's `EmulatedCard`) gets its TCP connection into the namespace from a small "keeper"
process living there, which connects to vpcd on 127.0.0.1 and hands the socket over by file
descriptor passing (SCM_RIGHTS); the keeper also keeps the namespaces alive across pcscd
restarts. Needs root (unshare/nsenter/mount); `missing()` says what is absent.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from drivers.vcard import DEFAULT_MAX_READ, VPCD_PORT, Carrier, EmulatedCard, Fault
from terminal.ports import DeviceEvent

VPCD_LIB = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
STOCK_VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
#: Debian's /etc/reader.conf.d/vpcd, used when that file is absent.
DEFAULT_VPCD_CONF = (
    'FRIENDLYNAME "Virtual PCD"\n'
    "DEVICENAME   /dev/null:0x8C7B\n"
    f"LIBPATH      {VPCD_LIB}\n"
    "CHANNELID    0x8C7B\n"
)
READER = "Virtual PCD 00 00"
READER_2 = "Virtual PCD 00 01"

# Runs inside the new namespaces: bring loopback up, then hand out TCP connections to vpcd.
_KEEPER = r"""
import fcntl, socket, struct, sys, threading, os
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    ifreq = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh14x", b"lo", 0))
    flags = struct.unpack("16sh14x", ifreq)[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1])
srv.listen(8)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        try:
            port = int(conn.recv(16).decode())
            tcp = socket.create_connection(("127.0.0.1", port), timeout=5)
        except (OSError, ValueError) as exc:
            conn.sendall(("error " + str(exc)).encode())
            continue
        with tcp:
            socket.send_fds(conn, [b"ok"], [tcp.fileno()])
"""


#: Prefix of our children: SIGKILL when the test process goes, so no pcscd outlives it
#: (preexec_fn would do the same but is unsafe with the threads a test runs). The signal comes
#: when the *thread* that started the child ends: call open() and start() from the main thread.
_DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"]


def missing() -> str | None:
    """Why a private pcscd cannot run here, or None when it can."""
    if shutil.which("pcscd") is None:
        return "pcscd is not installed (apt install pcscd)"
    if not VPCD_LIB.exists():
        return "vpcd is not installed (apt install vsmartcard-vpcd)"
    for tool in ("unshare", "nsenter", "mount", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install util-linux mount)"
    if os.geteuid() != 0:
        return "a private pcscd needs root (network and mount namespaces)"
    try:
        import smartcard.scard  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "pyscard is not installed (pip install pyscard)"
    return None


class Pcscd:
    """A private pcscd with the stock vpcd reader config, in its own namespaces.

    `open()` creates the namespaces, `start()` / `stop()` / `kill()` run pcscd in them (as often
    as a test likes), `card(...)` makes an `EmulatedCard` that connects to its vpcd, `close()`
    ends everything. Use as a context manager.
    """

    def __init__(self) -> None:
        self.base = Path(tempfile.gettempdir()) / f"cardpos-pcscd-{os.getpid()}"
        self.run_dir = self.base / "run"
        self.socket_path = self.run_dir / "pcscd.comm"
        self.conf_vpcd = self.base / "readers-vpcd"
        self.conf_empty = self.base / "readers-none"
        self.log_path = self.base / "pcscd.log"
        self._keeper_sock = self.base / "keeper.sock"
        self._keeper: subprocess.Popen[bytes] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Pcscd:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client process of this pcscd."""
        return {**os.environ, "PCSCLITE_CSOCK_NAME": str(self.socket_path)}

    @property
    def running(self) -> bool:
        return self._daemon is not None and self._daemon.poll() is None

    def open(self) -> None:
        why = missing()
        if why is not None:
            raise RuntimeError(why)
        if self.base.exists():
            raise RuntimeError(f"{self.base} exists: another Pcscd of this process is open")
        for d in (self.run_dir, self.conf_vpcd, self.conf_empty):
            d.mkdir(parents=True)
        conf = (STOCK_VPCD_CONF.read_text(encoding="utf-8") if STOCK_VPCD_CONF.exists()
                else DEFAULT_VPCD_CONF)
        (self.conf_vpcd / "vpcd").write_text(conf, encoding="utf-8")
        # In the new mount namespace only: our run directory becomes /run/pcscd.
        script = 'mkdir -p /run/pcscd && mount --bind "$0" /run/pcscd && exec "$@"'
        self._keeper = subprocess.Popen(
            [*_DIE_WITH_PARENT, "unshare", "--net", "--mount", "--propagation", "private",
             "sh", "-c", script, str(self.run_dir),
             sys.executable, "-c", _KEEPER, str(self._keeper_sock)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._keeper.stdout is not None
        line = self._keeper.stdout.readline()
        if line.strip() != b"ready":
            self.close()
            raise RuntimeError(f"namespace keeper did not start: {line!r}")

    def start(self, readers: bool = True, timeout: float = 10.0) -> None:
        """Start pcscd -f (with the vpcd reader, or with no reader at all) and wait until it
        accepts clients."""
        if self._keeper is None:
            raise RuntimeError("open() first")
        if self.running:
            raise RuntimeError("pcscd is already running")
        conf = self.conf_vpcd if readers else self.conf_empty
        with self.log_path.open("ab") as log:
            log.write(f"--- start readers={readers}\n".encode())
            log.flush()
            self._daemon = subprocess.Popen(
                [*_DIE_WITH_PARENT, "nsenter", "--target", str(self._keeper.pid),
                 "--net", "--mount", "pcscd", "--foreground", "--info", "--config", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._daemon.poll() is not None:
                raise RuntimeError(f"pcscd exited with {self._daemon.returncode}: "
                                   f"{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"pcscd not ready after {timeout} s: {self.log_tail()}")
            time.sleep(0.02)

    def _ready(self) -> bool:
        # "daemon ready" is logged after the readers of reader.conf have been added.
        return self.log_path.read_bytes().rsplit(b"--- start", 1)[-1].find(
            b"daemon ready") >= 0

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, as systemd stops it; pcscd removes its socket and pid file."""
        self._end(signal.SIGTERM, timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL: a crash. The stale socket and pid file stay; the next start cleans them."""
        self._end(signal.SIGKILL, timeout)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        daemon, self._daemon = self._daemon, None
        if daemon is None or daemon.poll() is not None:
            return
        daemon.send_signal(sig)
        try:
            daemon.wait(timeout)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout)

    def connect_card(self, slot: int = 0) -> socket.socket:
        """A TCP connection to vpcd's `slot` (0 or 1) inside pcscd's network namespace."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as ctl:
            ctl.settimeout(5.0)
            ctl.connect(str(self._keeper_sock))
            ctl.sendall(str(VPCD_PORT + slot).encode())
            message, fds, _flags, _addr = socket.recv_fds(ctl, 1024, 1)
        if not fds:
            raise ConnectionRefusedError(message.decode(errors="replace"))
        return socket.socket(fileno=fds[0])

    def card(self, uid: bytes, token: bytes | None = None, *, slot: int = 0,
             carrier: Carrier = Carrier.CARDPOS, fault: Fault | None = None,
             delay_s: float = 0.0, max_read: int = DEFAULT_MAX_READ) -> EmulatedCard:
        """An `EmulatedCard` (see its arguments) that this pcscd's vpcd sees on `slot`."""
        return EmulatedCard(uid, token, carrier=carrier, fault=fault, delay_s=delay_s,
                            max_read=max_read, connect=lambda: self.connect_card(slot))

    def in_netns(self, argv: list[str]) -> list[str]:
        """`argv` wrapped to run in pcscd's network namespace (where 127.0.0.1:35963 is vpcd)."""
        if self._keeper is None:
            raise RuntimeError("open() first")
        return ["nsenter", "--target", str(self._keeper.pid), "--net", *argv]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def close(self) -> None:
        self.stop()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            if keeper.stdin is not None:
                with contextlib.suppress(OSError):
                    keeper.stdin.close()  # the keeper exits on EOF
            try:
                keeper.wait(5.0)
            except subprocess.TimeoutExpired:
                keeper.kill()
                keeper.wait(5.0)
            if keeper.stdout is not None:
                keeper.stdout.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _reader_child(socket_path: str, reader_filter: str | None, options: dict[str, Any],
                  fail_first: bool, events: multiprocessing.Queue[tuple[str, DeviceEvent]],
                  control: Connection) -> None:
    """Body of a `ReaderProcess` child (a fresh interpreter: libpcsclite not yet initialised)."""
    os.environ["PCSCLITE_CSOCK_NAME"] = socket_path
    from drivers.pcsc import PcscReader

    calls = 0

    def sink(event: DeviceEvent) -> None:
        nonlocal calls
        calls += 1
        events.put((threading.current_thread().name, event))
        if fail_first and calls == 1:
            raise RuntimeError("a consumer bug (on purpose)")

    device = PcscReader(reader_filter, **options)
    device.start(sink)
    control.recv()  # "stop"
    started = time.monotonic()
    device.stop()
    took = time.monotonic() - started
    alive = [t.name for t in threading.enumerate() if t.name == "pcsc-reader"]
    control.send((took, alive))


class ReaderProcess:
    """A `PcscReader(reader_filter, **options)` in a spawned child process talking to `pcscd`.

    Its events arrive as (thread name, event) on `events`; `stop()` stops the reader in the
    child and returns how long `PcscReader.stop()` took and which reader threads were left.
    With `fail_first`, the child's sink raises on the first event (after queueing it).
    """

    def __init__(self, pcscd: Pcscd, reader_filter: str | None, *, fail_first: bool = False,
                 **options: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.events: multiprocessing.Queue[tuple[str, DeviceEvent]] = ctx.Queue()
        self._control, child_end = ctx.Pipe()
        self._process = ctx.Process(
            target=_reader_child, name="pcsc-reader-host", daemon=True,
            args=(str(pcscd.socket_path), reader_filter, options, fail_first, self.events,
                  child_end))
        self._process.start()
        child_end.close()

    def stop(self, timeout: float = 10.0) -> tuple[float, list[str]]:
        try:
            self._control.send("stop")
            if not self._control.poll(timeout):
                raise TimeoutError(f"reader process did not stop within {timeout} s")
            took, alive = self._control.recv()
        finally:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout)
            self._control.close()
            self.events.close()
        return float(took), list(alive)

    def get(self, timeout: float) -> tuple[str, DeviceEvent]:
        """The next (thread name, event); queue.Empty after `timeout` seconds."""
        return self.events.get(timeout=timeout)

