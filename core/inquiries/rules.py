"""Classification of an inquiry from rules an admin can edit, and the check of those rules.

Rules, in the order they are tried: a sender pattern (a known bank's address is a credit
application whatever it says), then keywords per kind in ``Rules.order`` (the first kind
with a keyword in the subject or body wins, so a complaint about a loan is a complaint),
then the channel's default, then a general question. Keywords match whole words, case- and
diacritic-insensitively, because clients write "zalba" as often as "žalba"."""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from core.errors import DomainError
from core.inquiries.model import InquiryChannel, InquiryKind

# Limits: an admin's document and a client's text are bounded before any regex sees them.
MAX_KEYWORDS = 200  # per kind and language
MAX_KEYWORD_CHARS = 100
MAX_SENDERS = 200
MAX_PATTERN_CHARS = 200
MAX_LANGUAGES = 10
MAX_TEXT_CHARS = 20_000  # of subject + body searched: the opening says what it is about
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")

# Letters NFKD does not take apart: đ is not d + a mark, and is written "dj" without one.
_FOLD_EXTRA = str.maketrans({"đ": "dj", "ß": "ss", "ø": "o", "ł": "l", "æ": "ae"})


def fold(text: str) -> str:
    """``text`` lowercased without diacritics: "Žalba" and "zalba" alike, "Đurđa" as
    "djurdja"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD_EXTRA))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=4096)
def _keyword_re(folded: str) -> re.Pattern[str]:
    # Whole words: "kredit" finds "kredit" but not "kreditna"; spaces in a phrase match any
    # run of white space (a line break in the middle of "zahtjev za kredit").
    words = [re.escape(w) for w in folded.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")


@dataclass(frozen=True)
class SenderRule:
    pattern: str  # a shell-style pattern over the folded address: "*@banka.ba", "info@*"
    kind: InquiryKind


@dataclass(frozen=True)
class Rules:
    # kind -> language -> keywords (phrases allowed)
    keywords: Mapping[InquiryKind, Mapping[str, tuple[str, ...]]]
    senders: tuple[SenderRule, ...] = ()
    channels: Mapping[InquiryChannel, InquiryKind] | None = None
    # The order kinds' keywords are tried in; kinds left out are tried after, in the enum's.
    order: tuple[InquiryKind, ...] = ()

    def kinds_in_order(self) -> tuple[InquiryKind, ...]:
        return self.order + tuple(k for k in InquiryKind if k not in self.order)


@dataclass(frozen=True)
class Match:
    """The rule that decided a classification (kept on the inquiry: an agent sees why)."""

    source: Literal["sender", "keyword", "channel", "default"]
    kind: InquiryKind
    rule: str | None = None  # the sender pattern or the keyword
    language: str | None = None  # the keyword's language


_K = InquiryKind
DEFAULT_RULES = Rules(
    keywords={
        _K.COMPLAINT: {
            # Whole words, so the cases a client writes are listed (Bosnian declines nouns).
            "bs": (
                *("žalba", "žalbu", "žalbe", "žalbom", "žalim", "reklamacija", "reklamaciju"),
                *("prigovor", "prigovora"),
            ),
            "en": ("complaint", "complain", "dissatisfied"),
        },
        _K.DONATION_REQUEST: {
            "bs": ("donacija", "donaciju", "donacije", "zahtjev za donaciju"),
            "en": ("donation", "donation request", "sponsorship"),
        },
        _K.CREDIT_APPLICATION: {
            "bs": (
                *("kredit", "kredita", "kreditu", "kreditom", "krediti", "zahtjev za kredit"),
                *("mikrokredit", "mikrokredita", "zajam", "zajma"),
            ),
            "en": ("loan", "loan application", "credit application"),
        },
        _K.CHANGE_OF_DATA: {
            "bs": (
                "promjena adrese",
                "promjena telefona",
                "promjena broja telefona",
                "promjena podataka",
                "nova adresa",
                "novi broj",
            ),
            "en": ("change of address", "change of phone", "change my address", "new address"),
        },
        _K.GENERAL_QUESTION: {},
    },
    # A complaint is named first: "a complaint about my loan" is a complaint, and a
    # donation request is looked for before a loan ("zahtjev za donaciju" is not a credit).
    order=(_K.COMPLAINT, _K.DONATION_REQUEST, _K.CREDIT_APPLICATION, _K.CHANGE_OF_DATA),
)


def classify(
    subject: str,
    body: str,
    sender: str | None,
    channel: InquiryChannel,
    rules: Rules = DEFAULT_RULES,
) -> tuple[InquiryKind, Match]:
    """The inquiry's kind and the rule that matched."""
    if sender:
        address = fold(sender.strip())
        for rule in rules.senders:
            if fnmatch.fnmatchcase(address, fold(rule.pattern)):
                return rule.kind, Match("sender", rule.kind, rule.pattern)
    text = fold(f"{subject}\n{body}"[:MAX_TEXT_CHARS])
    for kind in rules.kinds_in_order():
        for language, words in rules.keywords.get(kind, {}).items():
            for word in words:
                if _keyword_re(fold(word)).search(text):
                    return kind, Match("keyword", kind, word, language)
    default = (rules.channels or {}).get(channel)
    if default is not None:
        return default, Match("channel", default, str(channel))
    return InquiryKind.GENERAL_QUESTION, Match("default", InquiryKind.GENERAL_QUESTION)


# ---- the admin's document ------------------------------------------------------------------


class RulesError(DomainError):
    """A rules document that cannot be used; ``details["path"]`` names the place in it."""

    def __init__(self, error_id: str, message: str, path: str) -> None:
        super().__init__(
            f"{path}: {message}", error_id=error_id, status=422, details={"path": path}
        )


def _kind(value: Any, path: str) -> InquiryKind:
    try:
        return InquiryKind(value)
    except (ValueError, TypeError):
        known = ", ".join(InquiryKind)
        raise RulesError("rules_unknown_kind", f"{value!r} is not a kind ({known})", path) from None


def _mapping(value: Any, path: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise RulesError("rules_shape", "expected a mapping", path)
    return value


def _list(value: Any, path: str, limit: int) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise RulesError("rules_shape", "expected a list", path)
    if len(value) > limit:
        raise RulesError("rules_too_many", f"at most {limit} entries", path)
    return value


def _text(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RulesError("rules_shape", "expected a non-empty text", path)
    if len(value) > limit:
        raise RulesError("rules_too_long", f"at most {limit} characters", path)
    if any(c in value for c in "\r\n\0"):
        raise RulesError("rules_shape", "no line breaks", path)
    return value.strip()


def check_rules(data: Any) -> Rules:
    """The ``Rules`` of an admin's document (YAML or JSON, already parsed)::

        order: [complaint, donation_request, credit_application, change_of_data]
        keywords: {complaint: {bs: [žalba, reklamacija], en: [complaint]}}
        senders: [{pattern: "*@banka.ba", kind: credit_application}]
        channels: {facebook: general_question}

    Raises ``RulesError`` naming the first wrong place (``keywords.complaint.bs[2]``)."""
    doc = _mapping(data, "rules")
    unknown = sorted(set(map(str, doc)) - {"order", "keywords", "senders", "channels"})
    if unknown:
        raise RulesError("rules_unknown_key", "unknown key", unknown[0])

    order: list[InquiryKind] = []
    for i, value in enumerate(_list(doc.get("order", []), "order", len(InquiryKind))):
        kind = _kind(value, f"order[{i}]")
        if kind in order:
            raise RulesError("rules_duplicate", f"{kind} is named twice", f"order[{i}]")
        order.append(kind)

    keywords: dict[InquiryKind, dict[str, tuple[str, ...]]] = {}
    for kind_name, languages in _mapping(doc.get("keywords", {}), "keywords").items():
        kind = _kind(kind_name, f"keywords.{kind_name}")
        where = f"keywords.{kind}"
        per_language = _mapping(languages, where)
        if len(per_language) > MAX_LANGUAGES:
            raise RulesError("rules_too_many", f"at most {MAX_LANGUAGES} languages", where)
        keywords[kind] = {}
        for language, words in per_language.items():
            if not isinstance(language, str) or not _LANGUAGE.match(language):
                raise RulesError("rules_language", "a language is a code like bs or en", where)
            at = f"{where}.{language}"
            checked = tuple(
                _text(w, f"{at}[{i}]", MAX_KEYWORD_CHARS)
                for i, w in enumerate(_list(words, at, MAX_KEYWORDS))
            )
            for i, word in enumerate(checked):
                if not any(c.isalnum() for c in word):
                    raise RulesError(
                        "rules_keyword", "a keyword needs a letter or digit", f"{at}[{i}]"
                    )
            keywords[kind][language] = checked

    senders: list[SenderRule] = []
    for i, entry in enumerate(_list(doc.get("senders", []), "senders", MAX_SENDERS)):
        at = f"senders[{i}]"
        rule = _mapping(entry, at)
        if set(map(str, rule)) != {"pattern", "kind"}:
            raise RulesError("rules_shape", "a sender rule has a pattern and a kind", at)
        pattern = _text(rule["pattern"], f"{at}.pattern", MAX_PATTERN_CHARS)
        if pattern.strip("*?") == "":
            # "*" would make every message one kind: surely a slip, not a rule.
            raise RulesError("rules_pattern", "a pattern must name part of an address", at)
        senders.append(SenderRule(pattern, _kind(rule["kind"], f"{at}.kind")))

    channels: dict[InquiryChannel, InquiryKind] = {}
    for name, kind_name in _mapping(doc.get("channels", {}), "channels").items():
        try:
            channel = InquiryChannel(name)
        except (ValueError, TypeError):
            known = ", ".join(InquiryChannel)
            raise RulesError(
                "rules_unknown_channel", f"{name!r} is not a channel ({known})", f"channels.{name}"
            ) from None
        channels[channel] = _kind(kind_name, f"channels.{name}")

    return Rules(keywords=keywords, senders=tuple(senders), channels=channels, order=tuple(order))


def rules_document(rules: Rules) -> dict[str, Any]:
    """``rules`` as the admin's document ``check_rules`` reads (what the API shows to edit)."""
    doc: dict[str, Any] = {
        "order": [str(k) for k in rules.order],
        "keywords": {
            str(kind): {language: list(words) for language, words in languages.items()}
            for kind, languages in rules.keywords.items()
        },
        "senders": [{"pattern": s.pattern, "kind": str(s.kind)} for s in rules.senders],
        "channels": {str(c): str(k) for c, k in (rules.channels or {}).items()},
    }
    return doc
