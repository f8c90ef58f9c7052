"""Who may do what on the agent desktop, and the session cookie that says who is asking.

Pure: roles and actions are data, ``may`` is a table lookup; the session cookie is an
itsdangerous-signed, timestamped session id, so a tampered or expired cookie reads as nobody
(whether the session is still live is the database's answer, models.web_sessions).
Passwords are argon2id hashes (argon2-cffi's defaults).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "centrala_session"
PRE_COOKIE = "centrala_pre"  # before log-in: carries the nonce the login form's CSRF token binds
MIN_PASSWORD = 8
MAX_PASSWORD = 200

_hasher = PasswordHasher()


class Action(StrEnum):
    USE_DESK = "use_desk"  # take calls, set own state, dispose own calls
    EDIT_CLIENTS = "edit_clients"  # search, create, edit contact data
    VIEW_WALLBOARD = "view_wallboard"
    CONTROL_ANY_CALL = "control_any_call"  # hang up / transfer a call another agent holds
    VIEW_REPORTS = "view_reports"  # survey results: figures, chart, every answer as CSV
    HEAR_ANY_RECORDING = "hear_any_recording"  # play/download any call's recording
    SIMULATE_CALLS = "simulate_calls"  # walk a call through a flow ("Simulate this call")
    # The admin console (/admin and its API). Flows and surveys change what every caller
    # hears: admins only. Queues, hours, agents and pauses are the supervisor's daily work.
    EDIT_FLOWS = "edit_flows"  # IVR flows: drafts, test numbers, publish, roll back
    EDIT_SURVEYS = "edit_surveys"  # survey definitions and campaign settings
    EDIT_QUEUES = "edit_queues"  # queue settings, members and penalties
    EDIT_HOURS = "edit_hours"  # opening hours and holidays of the line and the queues
    EDIT_AGENTS = "edit_agents"  # create, deactivate, reset password, queues, skills
    PAUSE_AGENTS = "pause_agents"  # pause or log out another agent
    MANAGE_ROLES = "manage_roles"  # give roles, see and revoke anyone's API tokens
    VIEW_AUDIT = "view_audit"  # the audit trail of every console change
    SEND_NOTICES = "send_notices"  # offers, office changes, announcements to clients
    PRINT_LETTERS = "print_letters"  # a batch of printed letters to clients (a PDF)
    # Written inquiries: agents read and answer them; supervisors also give them to others.
    ANSWER_INQUIRIES = "answer_inquiries"
    MANAGE_INQUIRIES = "manage_inquiries"
    EDIT_INQUIRY_RULES = "edit_inquiry_rules"  # the classification rules: admins


ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "agent": frozenset({Action.USE_DESK, Action.EDIT_CLIENTS, Action.ANSWER_INQUIRIES}),
    "manager": frozenset({Action.USE_DESK, Action.EDIT_CLIENTS, Action.ANSWER_INQUIRIES}),
    "supervisor": frozenset(
        {
            Action.USE_DESK,
            Action.EDIT_CLIENTS,
            Action.VIEW_WALLBOARD,
            Action.CONTROL_ANY_CALL,
            Action.VIEW_REPORTS,
            Action.HEAR_ANY_RECORDING,
            Action.SIMULATE_CALLS,
            Action.EDIT_QUEUES,
            Action.EDIT_HOURS,
            Action.EDIT_AGENTS,
            Action.PAUSE_AGENTS,
            Action.SEND_NOTICES,
            Action.PRINT_LETTERS,
            Action.ANSWER_INQUIRIES,
            Action.MANAGE_INQUIRIES,
        }
    ),
    "admin": frozenset(Action),  # everything: flows, surveys, roles, the audit trail
}


@dataclass(frozen=True)
class User:
    agent_id: str
    role: str
    nonce: str  # the session id (web_sessions.id): binds the CSRF token
    language: str = "bs"  # of the pages and texts shown to them (web.i18n)


def may(role: str, action: Action) -> bool:
    return action in ROLE_ACTIONS.get(role, frozenset())


def may_control_call(user: User, call_agent_id: str | None) -> bool:
    """An agent controls the calls they hold; supervisors and admins any call."""
    if may(user.role, Action.CONTROL_ANY_CALL):
        return True
    return may(user.role, Action.USE_DESK) and call_agent_id == user.agent_id


def may_hear_recording(user: User, handled_by: set[str]) -> bool:
    """Supervisors and admins hear any call's recording; an agent or a manager only those of
    the calls they handled (``handled_by``: every agent the call was connected to)."""
    if may(user.role, Action.HEAR_ANY_RECORDING):
        return True
    return may(user.role, Action.USE_DESK) and user.agent_id in handled_by


def home_page(role: str) -> str:
    return "/wallboard" if role in ("supervisor", "admin") else "/desk"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches. With no hash (an unknown or inactive agent, or one
    imported from CSV before `centrala agent passwd`) it is checked against a dummy hash all
    the same: the answer must take as long as for a known agent, or the timing tells a
    guesser which agent ids exist."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def check_new_password(password: str) -> str | None:
    """Why ``password`` cannot be set, or None."""
    if len(password) < MIN_PASSWORD:
        return f"at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"at most {MAX_PASSWORD} characters"
    if any(c in password for c in "\r\n\0"):
        return "no line breaks or NUL"
    return None


class Sessions:
    """The session cookie: a signed, timestamped session id (``web_sessions.id``). It says
    nothing of who the user is or what they may do; the database does, on every request (see
    models.web_sessions), so a revocation there holds at once."""

    def __init__(self, secret: str, max_age_seconds: float) -> None:
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="centrala-desk-session")
        self.max_age = max_age_seconds

    def cookie(self, session_id: str) -> str:
        return self._serializer.dumps(session_id)

    def session_id(self, cookie: str | None) -> str | None:
        """The session id a genuine, unexpired cookie carries, else None."""
        if not cookie or len(cookie) > 400:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=int(self.max_age))
        except BadSignature:  # includes SignatureExpired
            return None
        return data if isinstance(data, str) and 0 < len(data) <= 64 else None

    def csrf_token(self, nonce: str) -> str:
        return hmac.new(self._secret, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(nonce), token or "")
