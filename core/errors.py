"""The errors a request can end in, with what a client needs to act on them.

``DomainError``: a command that cannot be done as asked. ``error_id`` is stable (API clients
and the desk branch on it), ``status`` is the HTTP status to answer, ``details`` is more data
for the client (e.g. ``{"field": "due_at"}``). One web middleware turns any of them into
``{"error_id", "message", "details"}`` JSON. Each layer's errors subclass it, keeping their
names and error ids: ``ACDError`` (core.acd), ``ReportError`` (core.surveys.report),
``FormError`` (core.desk.forms), ``CampaignError`` (models.campaigns), and the two below,
which the adapters raise and the web layer raises too when it checks a request.

``UpstreamError``: a system we depend on failed (``ari_app.ari.ARIError``); answered 502, or
503 when it is unavailable (``http_status``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.acd import ACDError


class DomainError(Exception):
    error_id: str = "domain_error"
    status: int = 400
    details: dict[str, Any]

    def __init__(
        self,
        message: str = "",
        *,
        error_id: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id
        if status is not None:
            self.status = status
        self.details = dict(details or {})


class UpstreamError(Exception):
    error_id: str = "upstream_error"
    http_status: int = 502


class AgentDeskError(DomainError):
    """An agent command that cannot be done now (``ari_app.agents``; the API's checks)."""

    def __init__(self, error_id: str, message: str, status: int = 409) -> None:
        super().__init__(message, error_id=error_id, status=status)

    @classmethod
    def from_acd(cls, exc: ACDError) -> AgentDeskError:
        return cls(exc.error_id, str(exc), 404 if exc.error_id == "unknown_agent" else 409)


class CallControlError(DomainError):
    """A call control that cannot be done now; ``status`` is the HTTP status to answer."""

    def __init__(self, error_id: str, message: str, status: int = 409) -> None:
        super().__init__(message, error_id=error_id, status=status)
