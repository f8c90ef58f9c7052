"""The CRM's kinds that the pure core decides on and the database stores: a client's type and
an agent's role (``models.tables`` stores them as these enums)."""

from __future__ import annotations

import enum


class ClientType(enum.StrEnum):
    KEY = "key"
    REGULAR = "regular"
    NEW = "new"


class AgentRole(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    MANAGER = "manager"
