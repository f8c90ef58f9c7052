"""Facts of a parsed e-mail, pure on its headers and text: whether a machine sent it (an
auto-reply, a bounce: never a client, never answered, or two auto-responders answer each
other forever), which inquiry it continues, its new text apart from the quoted one and the
signature, and the subject our answer carries."""

from __future__ import annotations

import email.policy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

MAX_REFERENCES = 50  # of a References header: the newest are the last
MAX_SUBJECT = 250
TOKEN = "[#INQ-{id}]"
_TOKEN = re.compile(r"\s*\[#INQ-(\d{1,12})\]", re.IGNORECASE)
_PLUS = re.compile(r"\+inq(\d{1,12})@", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,250})>")
_BARE_ID = re.compile(r"[^<>\s]{1,250}")  # a Message-ID as we keep it: without its <>
_REPLY_PREFIX = re.compile(r"^\s*((re|odg|odgovor|aw|sv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def _all(headers: Headers) -> dict[str, list[str]]:
    """Header names are case-insensitive and may repeat (Received, Auto-Submitted twice)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        found.setdefault(name.strip().lower(), []).append(str(value))
    return found


def _first_value(value: str) -> str:
    """ "auto-replied; owner-email=..." -> "auto-replied"."""
    return value.split(";", 1)[0].strip().lower()


_MACHINE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_BULK = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})


def is_auto_reply(headers: Headers) -> bool:
    """Whether a machine sent the message (RFC 3834 and the common non-standard marks): an
    out-of-office, a vacation responder, a delivery report, a read receipt."""
    h = _all(headers)
    if any(_first_value(v) not in ("no", "") for v in h.get("auto-submitted", [])):
        return True
    # X-Autoreply / X-Autorespond (Exim, cPanel, vacation programs) carry any value.
    if "x-autoreply" in h or "x-autorespond" in h:
        return True
    if any(_first_value(v) in _BULK for v in h.get("precedence", [])):
        return True
    # Exchange sets it on the messages it generates itself (OOF, receipts).
    if any(_first_value(v) not in ("", "none") for v in h.get("x-auto-response-suppress", [])):
        return True
    if any(_first_value(v) == "multipart/report" for v in h.get("content-type", [])):
        return True  # a delivery status notification or a disposition (read) report
    # A null reverse path is how bounces travel (RFC 5321 4.5.5).
    if any(v.strip() in ("<>", "") for v in h.get("return-path", [])):
        return True
    for _name, address in getaddresses(h.get("from", []) + h.get("sender", [])):
        if address.split("@", 1)[0].lower() in _MACHINE_SENDERS:
            return True
    return False


@dataclass(frozen=True)
class ThreadKey:
    """What ties a message to an inquiry, strongest first: the ids of the messages it
    answers (In-Reply-To, then References newest first), then an inquiry id from our token
    in the subject or the plus address it was sent to (a client whose mail program drops
    the headers). The adapter looks them up in that order."""

    message_ids: tuple[str, ...]
    inquiry_id: int | None


def thread_key(headers: Headers, subject: str | None = None) -> ThreadKey:
    h = _all(headers)
    ids: list[str] = []
    for value in h.get("in-reply-to", []):
        ids += _MESSAGE_ID.findall(value)
    references: list[str] = []
    for value in h.get("references", []):
        references += _MESSAGE_ID.findall(value)
    ids += reversed(references[-MAX_REFERENCES:])
    unique = tuple(dict.fromkeys(ids))
    if subject is None:
        subject = (h.get("subject") or [""])[0]
    inquiry_id: int | None = None
    token = _TOKEN.search(subject)
    if token:
        inquiry_id = int(token.group(1))
    else:
        for name in ("to", "cc", "delivered-to", "x-original-to"):
            for _n, address in getaddresses(h.get(name, [])):
                plus = _PLUS.search(address)
                if plus:
                    inquiry_id = int(plus.group(1))
                    break
            if inquiry_id is not None:
                break
    return ThreadKey(unique, inquiry_id)


def reply_subject(subject: str | None, inquiry_id: int) -> str:
    """ "Re: <subject> [#INQ-<id>]": one "Re:" and one token however long the thread is (an
    old token of another inquiry is replaced), on one line, bounded."""
    text = " ".join((subject or "").split())  # CR/LF gone: a header is one line
    text = _TOKEN.sub("", text).strip()
    text = _REPLY_PREFIX.sub("", text).strip()
    token = TOKEN.format(id=inquiry_id)
    room = MAX_SUBJECT - len("Re:  ") - len(token)
    if len(text) > room:
        text = text[: room - 1].rstrip() + "…"
    return f"Re: {text} {token}" if text else f"Re: {token}"


# ---- the new text of a reply ---------------------------------------------------------------

# "On Mon, 3 Mar 2025 at 10:00, Ana <ana@x.ba> wrote:" (Gmail, Apple Mail, Thunderbird) and
# the Bosnian/Croatian/Serbian mail programs' "Dana 3. 3. 2025. u 10:00, Ana je napisao/la:".
_ATTRIBUTION_START = re.compile(r"^\s*(on|dana|dne|am|le)\s", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(
    r"(wrote|napisao|napisala|napisao/la|napisao\(la\)|napisa|schrieb|écrit)\s*:\s*$",
    re.IGNORECASE,
)
_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|izvorna poruka|originalna poruka|forwarded message|"
    r"proslijeđena poruka)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(from|od|šalje|pošiljalac)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(sent|date|to|subject|poslano|datum|šalje|za|prima|predmet|tema)\s*:", re.IGNORECASE
)
_RULE = re.compile(r"^\s*_{10,}\s*$")


def _quote_starts(lines: list[str]) -> int | None:
    for i, line in enumerate(lines):
        if line.lstrip().startswith(">") or _ORIGINAL.match(line):
            return i
        if _ATTRIBUTION_START.match(line):
            # Mail programs wrap a long attribution onto a second line.
            joined = line if i + 1 >= len(lines) else line + " " + lines[i + 1]
            if _ATTRIBUTION_END.search(line) or _ATTRIBUTION_END.search(joined):
                return i
        if _RULE.match(line) and i + 1 < len(lines) and _HEADER_FROM.match(lines[i + 1]):
            return i  # Outlook on the web: a rule, then the quoted message's headers
        if _HEADER_FROM.match(line) and any(_HEADER_NEXT.match(n) for n in lines[i + 1 : i + 4]):
            return i  # Outlook: "From: ... / Sent: ... / To: ... / Subject: ..."
    return None


def _strip_blank(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n").rstrip()


@dataclass(frozen=True)
class Reply:
    new: str  # what the client wrote this time
    quoted: str  # the earlier messages their mail program quoted
    signature: str


def split_reply(text: str) -> Reply:
    """A reply's new text apart from the quoted part below it and the signature after the
    "-- " line. Answers written between quoted lines ("inline") keep only the text above
    the first quote here; the whole text stays stored with the message."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _quote_starts(lines)
    head, quoted = (lines, []) if start is None else (lines[:start], lines[start:])
    signature: list[str] = []
    for i, line in enumerate(head):
        if line in ("-- ", "--"):  # RFC 3676 4.3; many programs drop the trailing space
            head, signature = head[:i], head[i + 1 :]
            break
    return Reply(_strip_blank(head), _strip_blank(quoted), _strip_blank(signature))


# ---- an agent's answer by e-mail ---------------------------------------------------------


def _message(subject: str, sender: str, to: str, now: datetime, message_id: str) -> EmailMessage:
    """A plain message's headers (RFC 5322's line limit: a long subject is not an encoded
    word a mail program shows raw)."""
    msg = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    return msg


def answer_email(
    message_id: int,
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    answers: Sequence[str],
    now: datetime,
    domain: str,
    automatic: bool = False,
) -> EmailMessage:
    """An agent's answer as an e-mail (``automatic``: Centrala's own receipt, marked
    Auto-Submitted so no out-of-office answers it): plain text, our token in the subject,
    In-Reply-To the client's latest message and References the thread's ids (the client's
    mail program threads it; their answer comes back to the same inquiry), and an id of the
    answer's own (``<inquiry-answer-ID@domain>``): were it sent again after a crash at the
    wrong moment, a mail program shows it once."""
    msg = _message(subject, sender, to, now, f"<inquiry-answer-{message_id}@{domain}>")
    if automatic:
        msg["Auto-Submitted"] = "auto-replied"
    ids = [f"<{i}>" for i in (a.strip().strip("<>") for a in answers) if _BARE_ID.fullmatch(i)]
    if ids:
        msg["In-Reply-To"] = ids[-1]
        msg["References"] = " ".join(ids[-MAX_REFERENCES:])
    msg.set_content(text if text.endswith("\n") else text + "\n")
    return msg


ESCALATION_TEXT = {
    "bs": (
        "Upit #INQ-{id} ({kind}) je eskaliran Vama ({level}): {subject}\n\n"
        "Otvorite ga na deski: {link}\n"
    ),
    "en": (
        "Inquiry #INQ-{id} ({kind}) is escalated to you ({level}): {subject}\n\n"
        "Open it on the desk: {link}\n"
    ),
}
ESCALATION_SUBJECT = {
    "bs": "Eskaliran upit #INQ-{id}: {kind}",
    "en": "Escalated inquiry #INQ-{id}: {kind}",
}


def escalation_email(
    inquiry_id: int,
    *,
    kind: str,
    level: str,
    subject: str,
    sender: str,
    to: str,
    link: str,
    language: str,
    now: datetime,
    domain: str,
) -> EmailMessage:
    """The e-mail telling a supervisor or a manager an inquiry is escalated to them, in their
    desk's language, with its own id (``<inquiry-escalation-ID-LEVEL@domain>``: sent again
    after a crash, a mail program shows it once)."""
    lang = language if language in ESCALATION_TEXT else "bs"
    fields = {"id": inquiry_id, "kind": kind.replace("_", " "), "level": level,
              "subject": " ".join(subject.split())[:200], "link": link}  # fmt: skip
    msg = _message(
        ESCALATION_SUBJECT[lang].format(**fields), sender, to, now,
        f"<inquiry-escalation-{inquiry_id}-{level}@{domain}>",
    )  # fmt: skip
    msg["Auto-Submitted"] = "auto-generated"  # a machine's: no out-of-office answers it
    msg.set_content(ESCALATION_TEXT[lang].format(**fields))
    return msg
