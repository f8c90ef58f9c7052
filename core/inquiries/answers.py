"""The answers an agent starts from, in the client's language (Bosnian first): a greeting
with the client's name, the body of a common answer, the sign-off. The agent edits before
sending; nothing leaves unread. Pure data and one merge."""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("bs", "en")

# (name, text) per language; {name} is the client's. A kind's own answer comes first.
TEMPLATES: Mapping[str, Mapping[str, str]] = {
    "bs": {
        "thanks": "Poštovani/a {name},\n\nhvala Vam na poruci. Odgovaramo u nastavku.\n\n"
        "S poštovanjem,\nCall centar Fondacije",
        "complaint": "Poštovani/a {name},\n\nžao nam je zbog neugodnosti. Vašu žalbu smo "
        "zaprimili i proslijedili nadležnoj osobi; javit ćemo Vam se najkasnije za tri "
        "radna dana.\n\nS poštovanjem,\nCall centar Fondacije",
        "credit_application": "Poštovani/a {name},\n\nhvala na interesu za naše kredite. "
        "Za zahtjev nam trebaju kopija lične karte i potvrda o primanjima; možete ih "
        "poslati kao odgovor na ovu poruku.\n\nS poštovanjem,\nCall centar Fondacije",
        "details": "Poštovani/a {name},\n\nda bismo Vam pomogli, molimo pošaljite nam broj "
        "ugovora i broj telefona na koji Vas možemo dobiti.\n\nS poštovanjem,\n"
        "Call centar Fondacije",
    },
    "en": {
        "thanks": "Dear {name},\n\nthank you for your message. Please find our answer "
        "below.\n\nKind regards,\nThe Foundation's call centre",
        "complaint": "Dear {name},\n\nwe are sorry for the trouble. We have your complaint "
        "and passed it on to the person responsible; we will get back to you within three "
        "working days.\n\nKind regards,\nThe Foundation's call centre",
        "credit_application": "Dear {name},\n\nthank you for your interest in our loans. "
        "For an application we need a copy of your ID card and a proof of income; you may "
        "send them as a reply to this message.\n\nKind regards,\nThe Foundation's call centre",
        "details": "Dear {name},\n\nto help you we need your contract number and a phone "
        "number we can reach you on.\n\nKind regards,\nThe Foundation's call centre",
    },
}


def answers_for(kind: str, language: str | None, name: str) -> list[tuple[str, str]]:
    """The templates for an inquiry of ``kind``, in ``language`` (Bosnian when unknown),
    merged with the client's ``name``: the kind's own first."""
    texts = TEMPLATES[language if language in LANGUAGES else LANGUAGES[0]]
    who = " ".join(name.split()) or ("klijent" if language != "en" else "client")
    order = sorted(texts, key=lambda k: (k != kind, k != "thanks", k))
    return [(key, texts[key].replace("{name}", who)) for key in order]


__all__ = ["LANGUAGES", "TEMPLATES", "answers_for"]
