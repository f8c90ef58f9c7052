"""The words of the desk, the wallboard, the admin console, the login and the report pages in
each language they speak: ``web/translations/<language>.json`` (one flat ``{"key": "text"}``
object a language, keys like ``desk.hang_up``), read once at import. Pure: the standard
library only (json, re, pathlib) and ``core.enums`` for the languages; no aiohttp, no database.

``t(language, key, **fields)`` fills ``{name}`` placeholders; a key missing from the file, a
field left unfilled or a language not shipped raises: an untranslated text is a bug for the
tests to find, never an English fallback on an agent's screen. The browser's scripts get
their share of the texts embedded in the page (``script_texts``) and fill them the same way
(web/static/i18n.js).

Why JSON, not gettext or Babel: the scripts need the very same dictionary (a .po/.mo file
would be converted for them), gettext falls back to the English msgid by design, and the few
counts we show are phrased to need no plural forms ("Sačuvano izmjena: 3")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from core.enums import DeskLanguage

FILES = Path(__file__).parent / "translations"
DEFAULT = DeskLanguage.BS
# {name}: the only markup a text has (the scripts' t() reads the same).
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

# What each script of web/static may look up: the page embeds these namespaces (the first
# segment of a key) for the scripts it loads; test_i18n holds every key a script uses to it.
SCRIPT_NAMESPACES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "i18n.js": frozenset({"error", "format"}),
        "desk.js": frozenset(
            {
                "alert",
                "campaign_disposition",
                "category",
                "channel",
                "notice_kind",
                "notice_state",
                "inquiry_channel",
                "inquiry_kind",
                "inquiry_state",
                "cdisp",
                "client",
                "client_type",
                "desk",
                "disp",
                "document",
                "pacing",
                "pause",
                "pop",
                "preview",
                "rec",
                "search",
                "state",
            }
        ),
        "softphone.js": frozenset({"softphone"}),
        "inquiries.js": frozenset(
            {
                "error",
                "inq",
                "inq_template",
                "inquiry_channel",
                "inquiry_kind",
                "inquiry_send",
                "inquiry_state",
            }
        ),
        "wallboard.js": frozenset(
            {"inquiry_kind", "inquiry_state", "pacing", "pause", "state", "wallboard"}
        ),
        "notices.js": frozenset(
            {
                "channel",
                "notice_kind",
                "notice_skip",
                "notice_state",
                "notices",
                "opt_out_source",
                "segment",
            }
        ),
        "admin.js": frozenset(
            {
                "campaign_kind",
                "campaign_status",
                "console",
                "field",
                "role",
                "sim_end",
                "version_status",
                "weekday",
            }
        ),
    }
)


class TranslationError(LookupError):
    """A text that cannot be given: unknown language, missing key or unfilled field."""


def _load(language: str) -> Mapping[str, str]:
    data = json.loads((FILES / f"{language}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise TranslationError(f"{language}.json: not a flat object of texts")
    return MappingProxyType(data)


TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {language.value: _load(language.value) for language in DeskLanguage}
)


def texts(language: str) -> Mapping[str, str]:
    try:
        return TEXTS[language]
    except KeyError:
        raise TranslationError(f"no language {language!r}") from None


def placeholders(text: str) -> frozenset[str]:
    return frozenset(PLACEHOLDER.findall(text))


def t(language: str, key: str, /, **fields: object) -> str:
    try:
        text = texts(language)[key]
    except KeyError:
        raise TranslationError(f"{language}: no text {key!r}") from None

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in fields:
            raise TranslationError(f"{language} {key}: no value for {{{name}}}")
        return str(fields[name])

    return PLACEHOLDER.sub(fill, text)


def has(language: str, key: str) -> bool:
    return key in texts(language)


def label(language: str, family: str, value: object) -> str:
    """A stored value shown to a person (a category, a state, a period): its text in
    ``family``. Values outside the family (a pause reason typed at the CLI) are data and
    are shown as they are."""
    key = f"{family}.{value}"
    return t(language, key) if has(language, key) else str(value).replace("_", " ")


# The languages that write a decimal comma (the scripts ask the browser: Intl, by "locale").
DECIMAL_COMMA = frozenset({DeskLanguage.BS})


def decimal(language: str, value: float | None, places: int = 1) -> str:
    """A figure as the language writes it: 12.5 in English, 12,5 in Bosnian; – for none."""
    if value is None:
        return "–"
    text = f"{value:.{places}f}"
    return text.replace(".", ",") if texts(language) and language in DECIMAL_COMMA else text


def script_texts(language: str, scripts: Iterable[str]) -> dict[str, str]:
    """The texts the page's scripts look up: their namespaces, nothing else."""
    wanted: set[str] = set()
    for script in scripts:
        wanted |= SCRIPT_NAMESPACES[script]
    return {k: v for k, v in texts(language).items() if k.split(".", 1)[0] in wanted}


def from_accept_language(header: str | None) -> DeskLanguage:
    """The language for a page before log-in: the browser's most wanted one we speak
    (Accept-Language, RFC 9110 quality values), Bosnian when it wants none of ours. The
    neighbours' languages (hr, sr, sh, cnr) read Bosnian, not English."""
    best: tuple[float, int] | None = None
    chosen = DEFAULT
    for position, part in enumerate((header or "")[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-", 1)[0].lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = _NEIGHBOURS.get(primary, primary)
        if quality <= 0 or language not in TEXTS:
            continue
        rank = (quality, -position)
        if best is None or rank > best:
            best, chosen = rank, DeskLanguage(language)
    return chosen


_NEIGHBOURS = {"hr": "bs", "sr": "bs", "sh": "bs", "cnr": "bs"}


def check_language(value: object) -> DeskLanguage:
    """A language an agent may choose, or ValueError naming the choices."""
    try:
        return DeskLanguage(str(value))
    except ValueError:
        choices = ", ".join(language.value for language in DeskLanguage)
        raise ValueError(f"one of {choices}") from None
