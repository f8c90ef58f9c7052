"""What runs for the tests in this process, kept in a module imported by name so there is one
registry: pytest loads tests/integration/conftest.py as a conftest, and tests/browser's
conftest re-exports its fixtures from a second import of it, so pytest holds two instances of
each fixture. They share what runs here instead of starting a second copy.

At most one `centrala serve` may run (they would share the FastAGI port and the Stasis app
on the one Asterisk): the same backend's server is shared; starting the other backend's stops
this one (pytest runs all tests of one backend before the other's)."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from typing import Any


@dataclass
class Shared:
    value: Any
    users: int = 1


servers: dict[str, Shared] = {}  # backend -> conftest.Server
callers: list[Shared] = []  # at most one conftest.Callers


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    return proc.returncode
