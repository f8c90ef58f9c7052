"""The fault tests that need the real Asterisk and `centrala serve` use the integration tests'
own fixtures (tests/integration/live.py explains how the two imports share what runs)."""

from __future__ import annotations

from tests.integration.conftest import ami, callers, no_leftovers, pbx, server

__all__ = ["ami", "callers", "no_leftovers", "pbx", "server"]
