"""A received e-mail read into what a written inquiry needs (``parse_mail``): its ids for
threading, the sender and recipients, the subject and date, its text (the plain part, or
the HTML part turned into text when it has no plain one), its headers for
``core.inquiries.mail`` (auto-reply, thread, the new text of a reply) and its attachments
with safe file names.

Mail from the outside is often broken: a wrong or unknown charset, raw 8-bit headers, MIME
boundaries that never close, dates in any shape. Nothing here raises on it: what can be read
is read, the rest gets a default (an empty text, no date), so a message is never lost for
being malformed. The raw bytes stay the adapter's to keep.

Standard library only (``email`` with ``policy.default``, ``html.parser``), and ``core``."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from core.inquiries import mail as facts

MAX_FILENAME = 120  # characters, the extension kept
MAX_ATTACHMENTS = 100  # a message with more is a mailing bomb: the rest are not kept
MAX_HEADER_VALUE = 4000  # characters of one header's value kept
# Charsets tried, in order, on text that declares none or a wrong one: the region's mail
# programs write Windows-1250 when not UTF-8; Latin-1 reads any byte.
_FALLBACK_CHARSETS = ("utf-8", "cp1250", "latin-1")
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,250})>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Attachment:
    filename: str  # safe: no directory, no control characters, at most MAX_FILENAME long
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class InboundMail:
    """One received message as read. Ids are without their angle brackets, as
    ``core.inquiries.mail.thread_key`` gives them; addresses are bare ("ana@example.ba")."""

    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: datetime | None  # aware; None when missing or unreadable
    text: str
    text_from_html: bool  # the message had no plain text: ``text`` is its HTML's
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[Attachment, ...] = field(default=())

    def is_auto_reply(self) -> bool:
        """A machine sent it (out-of-office, bounce, read receipt): never answered."""
        return facts.is_auto_reply(self.headers)

    def thread_key(self) -> facts.ThreadKey:
        return facts.thread_key(self.headers, self.subject)

    def reply(self) -> facts.Reply:
        """The new text apart from the quoted one and the signature."""
        return facts.split_reply(self.text)


def parse_mail(raw: bytes) -> InboundMail:
    """``raw`` (RFC 5322 bytes, as fetched) read into an ``InboundMail``; never raises."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception:  # the parser is lenient; this is the last guard, not a path we expect
        message = EmailMessage(policy=policy.default)
    headers = tuple(_headers(message))
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name.lower(), value)
    from_name, from_address = _first_address(first.get("from", ""))
    in_reply_to = _ids(first.get("in-reply-to", ""))
    body, text, from_html = _body(message)
    return InboundMail(
        message_id=next(iter(_ids(first.get("message-id", ""))), None),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=tuple(_ids(first.get("references", ""))[-facts.MAX_REFERENCES :]),
        from_address=from_address,
        from_name=from_name,
        to=_addresses(headers, "to"),
        cc=_addresses(headers, "cc"),
        subject=" ".join(first.get("subject", "").split()),
        date=_date(first.get("date", "")),
        text=text,
        text_from_html=from_html,
        headers=headers,
        attachments=tuple(_attachments(message, body)),
    )


# ---- headers ------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Text from a header or a body as a database takes it: raw 8-bit bytes the parser kept
    as surrogates read as UTF-8 (or Windows-1250), control characters gone."""
    if any("\udc80" <= c <= "\udcff" for c in text):
        data = text.encode("utf-8", "surrogateescape")
        text = _decode(data, None)
    return _CONTROL.sub("", text)


def _decode(data: bytes, charset: str | None) -> str:
    for name in ((charset,) if charset else ()) + _FALLBACK_CHARSETS:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", "replace")  # not reached: Latin-1 reads any byte


def _headers(message: Message) -> Iterator[tuple[str, str]]:
    for name, raw in message.raw_items():
        try:
            # policy.default decodes RFC 2047 words and folds continuation lines.
            value = str(policy.default.header_fetch_parse(name, raw))
        except Exception:  # a header the parser cannot read: keep its raw text
            value = str(raw)
        value = " ".join(_clean(value).split())
        yield _clean(name).strip(), value[:MAX_HEADER_VALUE]


def _ids(value: str) -> list[str]:
    return list(dict.fromkeys(_MESSAGE_ID.findall(value)))


def _first_address(value: str) -> tuple[str, str]:
    pairs = [(n, a) for n, a in getaddresses([value]) if a]
    if not pairs:
        return "", ""
    name, address = pairs[0]
    return " ".join(name.split()), address.strip()


def _addresses(headers: tuple[tuple[str, str], ...], which: str) -> tuple[str, ...]:
    values = [v for n, v in headers if n.lower() == which]
    return tuple(dict.fromkeys(a.strip() for _n, a in getaddresses(values) if a.strip()))


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # "-0000": the time is UTC, its sender's zone unknown (RFC 5322 3.3)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# ---- body ---------------------------------------------------------------------------------


def _part_text(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return _clean(payload) if isinstance(payload, str) else ""
    return _clean(_decode(data, part.get_content_charset()))


def _body(message: Message) -> tuple[Message | None, str, bool]:
    """The part read as the message's text, the text, and whether it came from HTML."""
    body: Message | None = None
    if isinstance(message, EmailMessage):
        try:
            body = message.get_body(preferencelist=("plain", "html"))
        except Exception:
            body = None
    if body is None and message.get_content_maintype() == "text":
        body = message  # a single part of a text type get_body passed over (unknown subtype)
    if body is None:
        return None, "", False
    text = _part_text(body)
    if body.get_content_subtype() == "html":
        return body, html_to_text(text), True
    return body, text.replace("\r\n", "\n").replace("\r", "\n"), False


# ---- attachments --------------------------------------------------------------------------


def _leaves(part: Message, depth: int = 0) -> Iterator[Message]:
    """Every part that is not a container, in order; an attached message is one part (its
    own attachments stay inside it)."""
    if part.is_multipart() and part.get_content_maintype() == "multipart" and depth < 20:
        payload = part.get_payload()
        if isinstance(payload, list):
            for child in payload:
                if isinstance(child, Message):
                    yield from _leaves(child, depth + 1)
        return
    yield part


def _attachments(message: Message, body: Message | None) -> Iterator[Attachment]:
    kept = 0
    for part in _leaves(message):
        if part is body:
            continue
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        disposition = part.get_content_disposition()
        maintype = part.get_content_maintype()
        if maintype == "text" and filename is None and disposition != "attachment":
            continue  # the body's other alternative (the HTML beside the plain text)
        content_type = part.get_content_type()
        if maintype == "message":
            # An attached message is one Message; a delivery report, a list of field blocks.
            inner = part.get_payload()
            blocks = inner if isinstance(inner, list) else [inner]
            try:
                data = b"".join(m.as_bytes() for m in blocks if isinstance(m, Message))
            except Exception:
                data = b""
        else:
            try:
                payload = part.get_payload(decode=True)
            except Exception:
                payload = None
            data = payload if isinstance(payload, bytes) else b""
        kept += 1
        if kept > MAX_ATTACHMENTS:
            return
        yield Attachment(safe_filename(filename, content_type, kept), content_type, data)


def safe_filename(name: str | None, content_type: str, number: int) -> str:
    """A file name a disk and a browser take: the last path part only, no control or
    format characters, not hidden, at most MAX_FILENAME characters with the extension kept;
    "attachment-<number>.<ext>" when nothing usable is left."""
    text = unicodedata.normalize("NFC", _clean(name or ""))
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    text = " ".join(text.split()).strip(" .")
    if len(text) > MAX_FILENAME:
        stem, dot, extension = text.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            text = stem[: MAX_FILENAME - len(extension) - 1].rstrip(" .") + "." + extension
        else:
            text = text[:MAX_FILENAME].rstrip(" .")
    if not text:
        extension = mimetypes.guess_extension(content_type) or ".bin"
        if content_type == "message/rfc822":
            extension = ".eml"
        text = f"attachment-{number}{extension}"
    return text


# ---- HTML to text -------------------------------------------------------------------------

_BLOCK = frozenset(
    {
        *("address", "article", "aside", "blockquote", "center", "dd", "details", "div", "dl"),
        *("dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4"),
        *("h5", "h6", "header", "li", "main", "nav", "ol", "p", "pre", "section", "summary"),
        *("table", "tbody", "td", "th", "thead", "tfoot", "tr", "ul"),
    }
)
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript"})


class _Text(HTMLParser):
    """Text as a mail program shows it: blocks on lines of their own, whitespace collapsed
    outside <pre>, quoted blocks (<blockquote>) prefixed with "> " so the split of a reply
    finds them, links' addresses kept after their text, a rule as Outlook's line of
    underscores."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line = ""
        self.skip = 0
        self.quote = 0
        self.pre = 0
        self.href: list[str | None] = []
        self.link_text = ""

    def _break(self) -> None:
        """The line so far ends (a block began or ended); an empty one is not kept."""
        if self.line.strip():
            line = self.line.rstrip() if self.pre else self.line.strip()
            self.lines.append("> " * self.quote + line)
        self.line = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self.lines.append("> " * self.quote + self.line.strip())
            self.line = ""
        elif tag == "hr":
            self._break()
            self.lines.append("> " * self.quote + "_" * 32)
        elif tag in _BLOCK:
            self._break()
            if tag == "blockquote":
                self.quote += 1
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.line = "- "
        elif tag == "a":
            self.href.append(dict(attrs).get("href"))
            self.link_text = ""
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.handle_data(alt)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK:
            self._break()
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith(("http:", "https:")) and href != self.link_text.strip():
                self.line += f" <{href}>"

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = data.replace("\xa0", " ")
        if self.pre:
            first, *rest = data.split("\n")
            self.line += first
            for more in rest:
                self.lines.append("> " * self.quote + self.line.rstrip())
                self.line = more
        else:
            text = re.sub(r"\s+", " ", data)
            if not self.line.strip():
                text = text.lstrip()
            self.line += text
        if self.href:
            self.link_text += data

    def text(self) -> str:
        self._break()
        out: list[str] = []
        for line in self.lines:
            if line == "" and (not out or out[-1] == ""):
                continue  # one blank line between blocks at most
            out.append(line.rstrip())
        return "\n".join(out).strip("\n")


def html_to_text(html: str) -> str:
    """An HTML body as readable plain text (no markup, no scripts or styles)."""
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; a failure leaves the text read so far
        pass
    return parser.text()
