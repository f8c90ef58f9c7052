"""Written inquiries (issue 16), pure: what an e-mail, a contact-form post or a Facebook /
Instagram message means for the call centre, decided without I/O.

A package because the decisions are six separate rooms, each short enough to read whole:

* ``model``: the names (kinds, states, channels, message directions), the states' machine,
  and escalation (complaints, donation requests and credit applications go to the
  supervisor at once, then to the client's responsible manager);
* ``rules``: classification from admin-editable rules (keywords per kind and language,
  sender patterns, channel defaults), matched case- and diacritic-insensitively on word
  boundaries, and the check of an admin's rules document;
* ``sla``: first-response and resolution due times in business time over
  ``dialplan.hours`` (nights, weekends, holidays, DST), the clock stopped while waiting
  for the client;
* ``mail``: facts of a parsed e-mail: an auto-reply or bounce, the thread it belongs to,
  the new text apart from the quoted one and the signature, the reply's subject;
* ``webform``: the public contact form's spam defences and field checks;
* ``meta``: the Facebook / Instagram inbox: the webhook's signature and handshake, Meta's
  notifications read as messages, the 24-hour reply window, long replies cut to the
  platform's limit (imported as ``core.inquiries.meta``).

The adapters (IMAP, SMTP, the Meta webhook, the database, the web, the ACD) read and write;
these modules only decide. Imports: the standard library, ``dialplan`` and ``core``."""

from core.inquiries.mail import (
    Reply,
    ThreadKey,
    is_auto_reply,
    reply_subject,
    split_reply,
    thread_key,
)
from core.inquiries.model import (
    ESCALATED_KINDS,
    EscalationLevel,
    EscalationStep,
    InquiryChannel,
    InquiryError,
    InquiryEvent,
    InquiryKind,
    InquiryState,
    MessageDirection,
    escalation,
    transition,
)
from core.inquiries.rules import (
    DEFAULT_RULES,
    Match,
    Rules,
    RulesError,
    SenderRule,
    check_rules,
    classify,
    fold,
)
from core.inquiries.sla import (
    DEFAULT_SLA,
    SlaStatus,
    SlaTargets,
    business_time,
    due_at,
    sla_status,
)
from core.inquiries.webform import ContactCheck, ContactForm, FieldError, check_contact_form

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_SLA",
    "ESCALATED_KINDS",
    "ContactCheck",
    "ContactForm",
    "EscalationLevel",
    "EscalationStep",
    "FieldError",
    "InquiryChannel",
    "InquiryError",
    "InquiryEvent",
    "InquiryKind",
    "InquiryState",
    "Match",
    "MessageDirection",
    "Reply",
    "Rules",
    "RulesError",
    "SenderRule",
    "SlaStatus",
    "SlaTargets",
    "ThreadKey",
    "business_time",
    "check_contact_form",
    "check_rules",
    "classify",
    "due_at",
    "escalation",
    "fold",
    "is_auto_reply",
    "reply_subject",
    "sla_status",
    "split_reply",
    "thread_key",
    "transition",
]
