"""The CRM's kinds that the pure core decides on and the database stores: a client's type and
an agent's role and the language their desk speaks (``models.tables`` stores them as these
enums)."""

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


class DeskLanguage(enum.StrEnum):
    """The languages the desk, the wallboard and the report pages speak (web/i18n/<value>.json);
    Bosnian first: the default for an agent and for a browser that asks for neither."""

    BS = "bs"
    EN = "en"
