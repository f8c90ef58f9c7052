"""What every kind of test waits with. Tests wait on a condition, never for a fixed time: a
sleep long enough on a loaded CI machine is a waste everywhere else, and one short enough
everywhere else is a flaky test on CI."""

from __future__ import annotations

import asyncio
import inspect
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, overload

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]


@overload
async def wait_until(
    predicate: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    message: str = "condition",
) -> Any:
    """Call ``predicate`` (sync or async) until it returns something truthy, and return that.
    On timeout: AssertionError naming ``message`` and the last value seen. The loop sleeps
    ``interval`` between calls: a polling interval, not a synchronisation."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        last = value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {message}; last: {last!r}"
            )
        await asyncio.sleep(interval)


# Below the kernel's ephemeral range (32768-60999): a port the kernel hands out (bind to 0)
# may be taken as the local end of the next outgoing connection before the test's server
# binds it (seen in CI: "address already in use" for an SMSC's control port).
PORTS = range(20_000, 32_768)
_handed: set[int] = set()


def copy_pbx_root(built: Path, root: Path) -> Path:
    """``root``: a chroot of its own for a second Asterisk (a carrier, another node), copied
    once from the one `pbx up` built (``built``); a copy cut short is made again."""
    if (root / "rootfs" / ".centrala-rootfs-ready").is_file():
        return root
    partial = root / "rootfs.partial"
    if partial.exists():
        shutil.rmtree(partial)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(built / "rootfs"), str(partial)], check=True)
    partial.rename(root / "rootfs")
    return root


def free_port() -> int:
    """A loopback port nobody listens on now (for a server a test starts), never one the
    kernel picks for outgoing connections, and not one handed out before in this process."""
    for _ in range(1000):
        port = random.choice(PORTS)
        if port in _handed:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed.add(port)
        return port
    raise RuntimeError("no free port left below the ephemeral range")


class ServerProcess:
    """A test server run as its own process (``argv``), listening on ``port`` on loopback,
    its output in ``log``: ``start`` returns once it listens; ``stop`` and ``start`` again
    make a server that is down, then back."""

    def __init__(self, argv: list[str], port: int, log: Path, what: str) -> None:
        self.argv = argv
        self.listen_port = port
        self.log = log
        self.what = what
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.listen_port)) == 0

        await wait_until(listening, timeout=20, message=f"{self.what} listening")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


S = TypeVar("S", bound=ServerProcess)


@asynccontextmanager
async def running(server: S) -> AsyncIterator[S]:
    """``server`` started for the block (a fixture's), stopped after it."""
    await server.start()
    try:
        yield server
    finally:
        server.stop()
