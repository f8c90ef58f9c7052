"""Over 500 lines: every check of the translations reads the same files and pages; split,
each part would load them again.

The desk's translations (web/translations/*.json, web/i18n.py): every shipped language has
every text with the same placeholders; a missing text, field or language raises instead of
falling back to English; every key the templates, the scripts and the login handler use is
there, each script asks only for the namespaces its page embeds, and no text is left that
nothing shows. Then the pages themselves, rendered by the desk's Jinja environment in both
languages, and the browser's Accept-Language choosing the login page's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast, get_args

import aiohttp_jinja2
import pytest
from aiohttp import web
from markupsafe import Markup
from pydantic import BaseModel

from core.acd import AgentStatus
from core.campaign_report import CLOSED
from core.desk.forms import CATEGORIES, DISPOSITION_PAUSE, OUTCOMES
from core.dialler import AgentCampaignSettings, AgentDisposition, CampaignKind
from core.enums import AgentRole, ClientType, DeskLanguage
from core.inquiries import InquiryChannel, InquiryKind, InquiryState
from core.inquiries.answers import TEMPLATES as ANSWER_TEMPLATES
from core.inquiries.webform import ERROR_IDS as CONTACT_ERRORS
from core.notices import (
    OPT_OUT_SOURCES,
    SEGMENTS,
    SKIP_REASONS,
    Channel,
    NoticeKind,
    NoticeState,
)
from core.pacing import Mode
from core.queue_report import INTERVALS
from core.simulation.result import EndKind
from core.surveys import model as survey_model
from core.surveys.campaign import CampaignSettings
from core.surveys.nps import NPSResult
from core.surveys.report import CHART_ENGLISH, PERIODS, chart_svg
from dialplan import model as dialplan_model
from dialplan.model import WEEKDAYS
from models.flows import PUBLISHED, REFUSED, SCHEDULED
from models.tables import CampaignStatus
from web import i18n
from web.http import CLIENT_LANGUAGES, PAUSE_REASONS, page_context, setup_templates

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "web" / "templates"
STATIC = ROOT / "web" / "static"
PRODUCT = ("core", "models", "usecases", "ari_app", "agi", "web")


# Stored values shown through label(family, value): every value must have its text.
def editable_fields() -> tuple[str, ...]:
    """Every field of the flows, queues, surveys and campaign settings the console's forms
    show (web/static/admin.js fieldsFor)."""
    names: set[str] = set()
    for module in (dialplan_model, survey_model):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value.__module__ == module.__name__
            ):
                names |= set(value.model_fields)
    for settings in (CampaignSettings, AgentCampaignSettings):
        names |= set(settings.model_fields)
    return tuple(sorted(names))


FAMILIES: dict[str, tuple[str, ...]] = {
    "channel": tuple(Channel),
    "notice_kind": tuple(NoticeKind),
    "notice_state": tuple(NoticeState),
    "notice_skip": SKIP_REASONS,
    "contact_error": CONTACT_ERRORS,
    "inquiry_kind": tuple(InquiryKind),
    "inquiry_state": tuple(InquiryState),
    "inquiry_channel": tuple(InquiryChannel),
    "inquiry_send": ("queued", "sending", "sent", "failed"),
    "inq_template": tuple(ANSWER_TEMPLATES["bs"]),
    "opt_out_source": OPT_OUT_SOURCES,
    "segment": SEGMENTS,
    "state": tuple(AgentStatus),
    "pause": (*PAUSE_REASONS, DISPOSITION_PAUSE),
    "category": CATEGORIES,
    "outcome": OUTCOMES,
    "campaign_disposition": tuple(AgentDisposition),
    # core.desk.screenpop's alerts and document states
    "alert": (
        "overdue_debt",
        "document_expiring",
        "document_expired",
        "key_client",
        "birthday_today",
    ),
    "document": ("unknown", "valid", "expiring", "expired"),
    "client_type": tuple(ClientType),
    "pacing": tuple(Mode),
    "role": tuple(AgentRole),
    "lang": tuple(DeskLanguage),
    "period": PERIODS,
    "by_period": PERIODS,
    "period_heading": PERIODS,
    # the admin console: a flow version's status (the live one says so itself), where a
    # simulated call ends (in a queue: said with the queue), a calendar's days
    "version_status": (PUBLISHED, SCHEDULED, REFUSED),
    "sim_end": tuple(kind for kind in get_args(EndKind) if kind != "queued"),
    "weekday": WEEKDAYS,
    # the console's campaigns page
    "campaign_status": tuple(CampaignStatus),
    "campaign_kind": tuple(CampaignKind),
    # the console's forms name every field of what they edit
    "field": editable_fields(),
    # the queues report's intervals
    "interval": INTERVALS,
    # the campaigns report: why a contact was closed without being done
    "contact_closed": CLOSED,
}
KEY = re.compile(r"""["']([a-z_]+\.[a-z_.-]+)["']""")
LABEL = re.compile(r"""\blabel\(\s*["']([a-z_]+)["']""")
ALL_KEYS = frozenset(i18n.texts(DeskLanguage.BS))
NAMESPACES = frozenset(k.split(".", 1)[0] for k in ALL_KEYS)


def _keys(text: str) -> set[str]:
    """The quoted strings shaped like a key of one of our namespaces (not a file name)."""
    return {
        k
        for k in KEY.findall(text)
        if k.split(".", 1)[0] in NAMESPACES and not k.endswith((".html", ".js"))
    }


def _code(script: str) -> str:
    """The script without its comments (a whole line, or after two spaces): their words are
    no lookups."""
    lines = (re.sub(r"  // .*$", "", line) for line in script.splitlines())
    return "\n".join("" if line.lstrip().startswith("//") else line for line in lines)


def _scripts() -> dict[str, str]:
    return {p.name: _code(p.read_text(encoding="utf-8")) for p in sorted(STATIC.glob("*.js"))}


def _templates() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(TEMPLATES.glob("*.html"))}


def _login_errors() -> set[str]:
    """The keys web/http.py hands the login page as its error."""
    source = (ROOT / "web" / "http.py").read_text(encoding="utf-8")
    return set(re.findall(r'login_page\(\s*request,\s*"([^"]+)"', source))


def _families_used() -> set[str]:
    found: set[str] = set()
    for text in [*_scripts().values(), *_templates().values()]:
        found |= set(LABEL.findall(text))
    return found


def _error_ids_raised() -> set[str]:
    """Every quoted identifier in the product code: an error_id a translation names must be
    one of them (a text for an error nothing raises is dead)."""
    found: set[str] = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(re.findall(r'"([a-z_]+)"', path.read_text(encoding="utf-8")))
    return found


# ---- the files ----------------------------------------------------------------------------


def test_every_language_ships_a_file_and_no_file_is_unshipped() -> None:
    files = {p.stem for p in i18n.FILES.glob("*.json")}
    assert files == {language.value for language in DeskLanguage}


@pytest.mark.parametrize("language", [lang for lang in DeskLanguage if lang != i18n.DEFAULT])
def test_every_language_has_exactly_the_default_languages_keys(language: DeskLanguage) -> None:
    theirs, ours = set(i18n.texts(language)), set(i18n.texts(i18n.DEFAULT))
    assert sorted(ours - theirs) == [], f"missing in {language}.json"
    assert sorted(theirs - ours) == [], f"only in {language}.json"


def test_every_text_has_the_same_placeholders_in_every_language() -> None:
    differ = {
        key: {lang.value: sorted(i18n.placeholders(i18n.texts(lang)[key])) for lang in DeskLanguage}
        for key in ALL_KEYS
        if len({i18n.placeholders(i18n.texts(lang)[key]) for lang in DeskLanguage}) > 1
    }
    assert differ == {}


def test_no_text_has_a_brace_that_is_not_a_placeholder() -> None:
    for language in DeskLanguage:
        for key, text in i18n.texts(language).items():
            left = i18n.PLACEHOLDER.sub("", text)
            assert "{" not in left and "}" not in left, (language, key, text)
            assert text.strip() == text and text, (language, key)


def test_bosnian_is_written_with_its_letters() -> None:
    """Not an ASCII transliteration (c for č, dj for đ): the file has its own letters."""
    letters = set("".join(i18n.texts(DeskLanguage.BS).values()))
    assert set("čćžšđ") <= letters, sorted(set("čćžšđ") - letters)
    assert i18n.t("bs", "desk.hung_up") == "Poziv je prekinut"
    assert i18n.t("bs", "disp.save") == "Sačuvaj evidenciju"


# ---- t() ----------------------------------------------------------------------------------


def test_t_fills_the_placeholders() -> None:
    assert i18n.t("en", "desk.live_call", call_id="c-1") == "Live call c-1"
    assert i18n.t("bs", "client.saved", count=3) == "Sačuvano izmjena: 3"


def test_a_missing_key_raises_and_is_not_english() -> None:
    with pytest.raises(i18n.TranslationError, match=r"no text 'desk\.nowhere'"):
        i18n.t("bs", "desk.nowhere")


def test_an_unfilled_placeholder_raises() -> None:
    with pytest.raises(i18n.TranslationError, match="call_id"):
        i18n.t("bs", "desk.live_call")


@pytest.mark.parametrize("language", ["de", "hr", "", "EN", "bs-BA"])
def test_an_unknown_language_is_refused(language: str) -> None:
    with pytest.raises(i18n.TranslationError, match="no language"):
        i18n.t(language, "desk.hang_up")
    with pytest.raises(ValueError, match="one of bs, en"):
        i18n.check_language(language)


def test_check_language_takes_the_shipped_ones() -> None:
    assert i18n.check_language("en") is DeskLanguage.EN
    assert i18n.check_language("bs") is DeskLanguage.BS


def test_label_gives_a_familys_text_and_shows_other_values_as_data() -> None:
    assert i18n.label("bs", "state", "on_call") == "u razgovoru"
    assert i18n.label("en", "state", "on_call") == "on call"
    assert i18n.label("bs", "pause", "coffee_run") == "coffee run"  # typed at the CLI


def test_decimal_is_written_as_the_language_writes_it() -> None:
    assert i18n.decimal("bs", 16.666) == "16,7"
    assert i18n.decimal("en", 16.666) == "16.7"
    assert i18n.decimal("bs", None) == "–"
    assert i18n.decimal("en", 2, 0) == "2"


# ---- every key used, every key used once at least -----------------------------------------


def test_every_key_the_templates_and_the_login_use_exists() -> None:
    for name, text in _templates().items():
        for key in _keys(text):
            assert key in ALL_KEYS, f"{name}: {key}"
    assert _login_errors() <= ALL_KEYS
    assert {"login.wrong", "login.expired", "login.throttled"} <= _login_errors()


def test_the_templates_show_no_word_of_their_own() -> None:
    """Every visible word is a t() or label() call: a word typed into a template (between
    tags, or in an attribute a person reads) fails here, in any language."""
    # The product's name, and the transfer targets' syntax (the API's own words).
    allowed = {"Centrala", "supervisor, survey, queue:general, agent:ID"}
    for name, text in _templates().items():
        code = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", text, flags=re.S)
        for value in re.findall(r'(?:aria-label|title|placeholder|alt)="([^"]*)"', code):
            assert not re.search(r"[^\W\d_]", value) or value in allowed, (name, value)
        words = re.sub(r"<[^>]*>", " ", code)
        for word in re.findall(r"[^\W\d_][\w'’-]*", words):
            assert word in allowed, (name, word)


def test_every_key_a_script_uses_exists_and_its_page_embeds() -> None:
    for name, text in _scripts().items():
        wanted = i18n.SCRIPT_NAMESPACES[name]
        for key in _keys(text):
            assert key in ALL_KEYS, f"{name}: {key}"
            assert key.split(".", 1)[0] in wanted, f"{name}: {key} is not embedded for it"
        for family in LABEL.findall(text):
            assert family in wanted, f"{name}: label family {family} is not embedded for it"


def test_every_script_looks_its_texts_up_with_a_literal_key() -> None:
    """t(x) with a computed key would hide it from the checks above: keys are string
    literals (or a ternary of them); values go through label(family, value)."""
    call = re.compile(r"(?<!function )\bt\(\s*([^\s)])")
    for name, text in _scripts().items():
        for match in call.finditer(text):
            arg = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            if name == "i18n.js" or arg == '"':
                # i18n.js is the lookup itself: its computed keys are label()'s families and
                # errorText()'s error ids, checked below.
                continue
            rest = text[match.start(1) : match.start(1) + 120]
            # A ternary of literal keys: t(cond ? "a" : "b").
            assert re.match(r'[\w.!="()& ]+\?\s*"[a-z_.]+"\s*:', rest), f"{name}:{line}: {rest}"


def test_every_label_family_has_a_text_for_every_value() -> None:
    used = _families_used()
    assert used <= set(FAMILIES), sorted(used - set(FAMILIES))
    missing = [
        f"{family}.{value}"
        for family, values in FAMILIES.items()
        for value in values
        if f"{family}.{value}" not in ALL_KEYS
    ]
    assert missing == []


def test_every_error_text_names_an_error_the_code_raises() -> None:
    raised = _error_ids_raised()
    errors = {k.split(".", 1)[1] for k in ALL_KEYS if k.startswith("error.")}
    assert sorted(errors - raised - {"other"}) == []


def test_the_charts_english_is_the_english_file() -> None:
    """core.surveys.report draws the chart with these keys (its English is the CLI's)."""
    assert {k: i18n.texts("en")[k] for k in CHART_ENGLISH} == dict(CHART_ENGLISH)


def test_no_text_is_left_that_nothing_shows() -> None:
    used = set(_login_errors()) | set(CHART_ENGLISH)
    for text in [*_scripts().values(), *_templates().values()]:
        used |= _keys(text)
    for family, values in FAMILIES.items():
        used |= {f"{family}.{value}" for value in values}
    used |= {k for k in ALL_KEYS if k.startswith("error.")}  # by error_id, checked above
    used |= MAIL_KEYS
    used |= _keys((ROOT / "web" / "contact.py").read_text(encoding="utf-8"))  # its answers
    assert sorted(ALL_KEYS - used) == []


MAIL_KEYS = frozenset(_keys((ROOT / "core" / "report_mail.py").read_text(encoding="utf-8")))


def test_the_morning_mails_texts_are_in_every_language() -> None:
    """core.report_mail writes the e-mail with these keys, through the caller's t()."""
    assert len(MAIL_KEYS) == 5
    for language in DeskLanguage:
        assert set(i18n.texts(language)) >= MAIL_KEYS, language


# ---- the login page's language ------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "bs"),
        ("", "bs"),
        ("en-US,en;q=0.9", "en"),
        ("bs-BA,bs;q=0.9,en;q=0.8", "bs"),
        ("hr-HR,hr;q=0.9,en;q=0.8", "bs"),  # a neighbour's language reads Bosnian
        ("sr-Latn-BA", "bs"),
        ("de-DE,de;q=0.9,en;q=0.5", "en"),
        ("de-DE,fr", "bs"),  # none of ours: the default
        ("en;q=0.2,bs;q=0.8", "bs"),
        ("bs;q=0,en", "en"),  # q=0: not wanted at all
        ("en;q=abc, bs", "bs"),  # a broken quality counts for nothing
        ("*", "bs"),
        ("EN-gb", "en"),
    ],
)
def test_the_browsers_accept_language_chooses_the_login_pages(
    header: str | None, language: str
) -> None:
    assert i18n.from_accept_language(header) == language


# ---- the pages, rendered ------------------------------------------------------------------


class _User:
    agent_id = "amra"
    role = "supervisor"


def _render(template: str, language: str, scripts: tuple[str, ...] = (), **extra: Any) -> str:
    app = web.Application()
    setup_templates(app)
    env = aiohttp_jinja2.get_env(app)
    context = page_context(language, scripts, user=_User(), csrf="tok", **extra)
    return env.get_template(template).render(context)


DESK = {
    "name": "Amra",
    "categories": CATEGORIES,
    "outcomes": OUTCOMES,
    "campaign_dispositions": [d.value for d in AgentDisposition],
    "pause_reasons": PAUSE_REASONS,
    "client_languages": CLIENT_LANGUAGES,
    "languages": [lang.value for lang in DeskLanguage],
    "wallboard": True,
    "softphone": True,
    "softphone_default": "off",
}


def _embedded(page: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', page, re.S)
    assert found is not None
    texts: dict[str, str] = json.loads(found.group(1))
    return texts


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("bs", ["Primam pozive", "Prekini", "Sačuvaj evidenciju", "prigovor", "Odjava"]),
        ("en", ["Available", "Hang up", "Save disposition", "complaint", "Log out"]),
    ],
)
def test_the_desk_speaks_the_agents_language(language: str, words: list[str]) -> None:
    page = _render("desk.html", language, ("desk.js", "softphone.js"), **DESK)
    assert f'<html lang="{language}">' in page
    for word in words:
        assert word in page
    texts = _embedded(page)
    assert texts["desk.hang_up"] == i18n.t(language, "desk.hang_up")
    assert texts["softphone.answer"] == i18n.t(language, "softphone.answer")
    assert not any(k.startswith(("wallboard.", "report.", "login.")) for k in texts)
    scripts = re.findall(r'<script src="/static/([a-z0-9]+\.js)" defer>', page)
    assert scripts == ["i18n.js", "desk.js", "softphone.js"]  # i18n.js first: it defines t()
    selected = re.search(r'<option value="([a-z]+)" lang="[a-z]+" selected>', page)
    assert selected is not None and selected.group(1) == language


@pytest.mark.parametrize("language", ["bs", "en"])
def test_the_other_pages_render_in_both_languages(language: str) -> None:
    wallboard = _render("wallboard.html", language, ("wallboard.js",))
    assert f'<html lang="{language}">' in wallboard
    assert i18n.t(language, "wallboard.longest_wait") in wallboard
    assert set(_embedded(wallboard)) == set(
        i18n.script_texts(language, ("i18n.js", "wallboard.js"))
    )
    login = _render("login.html", language, error="login.wrong")
    assert i18n.t(language, "login.wrong") in login and "i18n" not in login  # no script
    reports = _render("survey_reports.html", language, names=[])
    assert i18n.t(language, "reports.none") in reports


def test_the_chart_speaks_the_pages_language() -> None:
    from web.reports import chart_words

    group = NPSResult(6, 2, 3, 1, score=16.666, ci_low=-20.0, ci_high=50.5)
    report = cast(
        Any,
        SimpleNamespace(
            survey="nps",
            overall=group,
            histogram=[0, 0, 0, 0, 0, 0, 1, 1, 2, 1, 1],
            nps_question="recommend",
            period="week",
            by_period={"2026-W48": group},
        ),
    )
    bosnian = chart_svg(report, chart_words("bs"))
    assert "nps: NPS 16,7 (interval 95 %: -20,0 do 50,5)" in bosnian
    assert "kritičari 0–6" in bosnian and "NPS po periodu (sedmica)" in bosnian
    assert chart_svg(report, chart_words("en")) == chart_svg(report)  # the CLI's English


def test_the_survey_report_writes_its_figures_as_the_language_does() -> None:
    group: dict[str, float] = {"responses": 6, "promoters": 2, "passives": 3, "detractors": 1}
    group |= {"nps": 16.666, "ci_low": -20.0, "ci_high": 50.5}
    figures = {
        "nps": {**group, "reliable": False},
        "rates": {
            "contacts": 10,
            "reached": 8,
            "contact_rate": 0.8,
            "started": 6,
            "response_rate": 0.6,
            "completed": 5,
            "completion_rate": 0.8333,
            "partial": 1,
            "refused": 1,
            "no_consent": 1,
        },
        "nps_question": "recommend",
        "versions": [1],
        "campaign": None,
        "respondents": 6,
        "answer_rows": 12,
        "by_segment": {"new": group},
        "by_version": {"1": group},
        "period": "week",
        "by_period": {"2026-W48": group},
        "questions": [],
    }
    given = dict.fromkeys(("version", "campaign", "period", "since", "until"), "")
    context: dict[str, Any] = {"name": "nps", "given": given, "periods": PERIODS}
    context["figures"] = figures
    context |= {"chart": Markup("<svg></svg>"), "csv_url": "/x.csv"}
    bosnian = _render("survey_report.html", "bs", **context)
    assert '<span class="kpi" id="nps">16,7</span>' in bosnian
    assert "Po sedmicama" in bosnian and "83,3 % onih koji su učestvovali" in bosnian
    english = _render("survey_report.html", "en", **context)
    assert '<span class="kpi" id="nps">16.7</span>' in english
    assert "By week" in english and "83.3% of those who took part" in english


def test_a_page_without_its_language_fails_instead_of_guessing() -> None:
    app = web.Application()
    setup_templates(app)
    with pytest.raises(KeyError):
        aiohttp_jinja2.get_env(app).get_template("login.html").render(csrf="x")


def test_the_embedded_texts_cannot_end_the_script_element() -> None:
    page = _render("wallboard.html", "en", ("wallboard.js",))
    body = re.search(r'id="i18n">(.*?)</script>', page, re.S)
    assert body is not None and "<" not in body.group(1)


CONSOLE_PAGES = sorted(p.name for p in TEMPLATES.glob("admin*.html") if p.name != "admin_base.html")


@pytest.mark.parametrize("language", ["bs", "en"])
@pytest.mark.parametrize("template", CONSOLE_PAGES)
def test_the_console_speaks_the_users_language(template: str, language: str) -> None:
    """Every console page, as web/admin_pages.py renders it: the frame, its own texts and
    the texts of admin.js embedded (i18n.js first: admin.js uses its t())."""
    from web.admin_pages import CONSOLE, PAGES

    assert {t for _, _, t in PAGES} | {"admin.html"} == set(CONSOLE_PAGES)
    may = {action.value: True for action in CONSOLE}
    page = _render(template, language, ("admin.js",), name="infoline", may=may)
    assert f'<html lang="{language}">' in page
    assert i18n.t(language, "base.console") in page
    assert i18n.t(language, "console.audit") in page  # the console's own menu
    scripts = re.findall(r'<script src="/static/([a-z0-9]+\.js)" defer>', page)
    assert scripts == ["i18n.js", "admin.js"]
    texts = _embedded(page)
    assert texts == i18n.script_texts(language, ("i18n.js", "admin.js"))
    assert texts["console.save_draft"] == i18n.t(language, "console.save_draft")
    assert texts["role.admin"] == i18n.t(language, "role.admin")
    assert not any(k.startswith(("desk.", "wallboard.", "login.")) for k in texts)


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("bs", ["IVR tok", "Sačuvaj nacrt", "Objavi", "Napomena za historiju", "Historija"]),
        ("en", ["IVR flow", "Save draft", "Publish", "Note for the history", "Audit trail"]),
    ],
)
def test_the_flow_editor_speaks_the_users_language(language: str, words: list[str]) -> None:
    may = {"edit_flows": True, "view_audit": True}
    page = _render("admin_flow.html", language, ("admin.js",), name="infoline", may=may)
    for word in words:
        assert word in page
    assert "<code>infoline</code>" in page
