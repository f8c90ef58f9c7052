"""The answers an agent starts from (core/inquiries/answers.py): in the client's language,
Bosnian when unknown, the inquiry's kind's own answer first, the client's name merged, every
template in every language."""

from __future__ import annotations

from core.inquiries.answers import LANGUAGES, TEMPLATES, answers_for


def test_the_kinds_own_answer_first_in_the_clients_language_with_their_name() -> None:
    found = answers_for("complaint", "en", "  John   Smith ")
    assert found[0][0] == "complaint" and found[1][0] == "thanks"
    assert found[0][1].startswith("Dear John Smith,\n\nwe are sorry")
    assert answers_for("general_question", None, "Amra")[0] == (
        "thanks",
        TEMPLATES["bs"]["thanks"].replace("{name}", "Amra"),
    )
    assert answers_for("complaint", "de", "")[0][1].startswith("Poštovani/a klijent,")


def test_every_template_is_in_every_language() -> None:
    keys = {lang: set(TEMPLATES[lang]) for lang in LANGUAGES}
    assert all(k == keys["bs"] for k in keys.values())
    assert all("{name}" in text for lang in LANGUAGES for text in TEMPLATES[lang].values())
