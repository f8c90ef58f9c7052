"""Procedural calls, pure: which calls the CRM's events call for, whether a task still stands
right before it is dialled, and what the agent says on it. ``models.procedures`` reads the
facts from the tables, writes the tasks (``procedure_tasks``) and asks these functions.

The kinds, in terms of the data (``payments`` from `centrala import payments`, ``loans`` from
`centrala import loans`, ``clients``). ``rules`` are ``ProcedureRules``; every time is UTC.

``unknown_payment``
    A payment matched to no loan (``matched`` false), paid within the last ``payment_days``.
    Called: the payer on ``payer_number``, else the client the file names as the payer (their
    first phone); nobody to call, no task. Cause ``payment:<payment_id>``. Gone when the
    payment has been matched since, or is no longer in the CRM.
``third_party_payment``
    A payment matched to a loan whose payer is not the loan's client: the file names another
    client as the payer, or names none and the payer's name is not the client's (case,
    accents, spacing and word order aside), paid within the last ``payment_days``. Called: the
    loan's client (did they know; should it be refunded). Cause ``payment:<payment_id>``.
    Gone when the payment is unmatched or removed, or its payer turns out to be the client.
``overpayment``
    A loan whose matched payments add up to more than its ``amount`` (read as what the client
    owes in total, as the loan system exports it) by at least ``overpayment_minimum``.
    Called: the loan's client (refund or keep as credit). Cause ``loan:<loan_id>``. Gone when
    the payments no longer exceed the amount (a payment unmatched or moved). A loan without
    an amount never counts as overpaid.
``early_repayment``
    A loan closed within the last ``early_repayment_days`` and repaid in a lump: one matched
    payment in the ``closing_window_days`` up to its closing is at least
    ``early_repayment_share`` of its amount (instalments are far smaller). Called: the client
    (why, and what they need next). Cause ``loan:<loan_id>``. Gone when the loan is open again.
``loan_monitoring``
    An open loan disbursed between ``monitoring_days`` and ``monitoring_days +
    monitoring_window_days`` ago: the follow-up on the use of the funds, once per loan (the
    window lets a missed day catch up without calling about every old loan). Called: the
    client. Cause ``loan:<loan_id>``. Gone when the loan is closed.
``document_expiry``
    A client whose ID document (``clients.document_expiry``) expires within the next
    ``document_days`` (today included; an expired one is the desk's alert, not a campaign's).
    Cause ``document:<client external id>:<expiry date>``. Gone when the date on file is no
    longer that one: ``document_renewed`` when later, ``document_changed`` when earlier or
    cleared (an earlier date gets a task of its own at the next generation).

A task names its kind and cause; (kind, cause) is unique, so generating again adds nothing.
``recheck`` gives the reason a task is no longer needed (``ClosedReason``), None while it
stands; the dialler asks right before dialling, and a task whose reason is given is closed
and not called.

Scripts: English, and the language of the shipped survey (Bosnian; Croatian and Serbian
clients get the same text, as the screen-pop's greeting does); others get English.

May import only ``core``, ``dialplan``, the standard library and pydantic (``core/__init__``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import Field

from dialplan.model import Strict


class ProcedureKind(StrEnum):
    UNKNOWN_PAYMENT = "unknown_payment"
    THIRD_PARTY_PAYMENT = "third_party_payment"
    EARLY_REPAYMENT = "early_repayment"
    OVERPAYMENT = "overpayment"
    LOAN_MONITORING = "loan_monitoring"
    DOCUMENT_EXPIRY = "document_expiry"


PAYMENT_KINDS = frozenset({ProcedureKind.UNKNOWN_PAYMENT, ProcedureKind.THIRD_PARTY_PAYMENT})
LOAN_KINDS = frozenset(
    {ProcedureKind.OVERPAYMENT, ProcedureKind.EARLY_REPAYMENT, ProcedureKind.LOAN_MONITORING}
)

ClosedReason = Literal[
    "payment_matched",
    "payment_unmatched",
    "payment_removed",
    "payer_is_client",
    "no_longer_overpaid",
    "loan_reopened",
    "loan_closed",
    "loan_removed",
    "document_renewed",
    "document_changed",
    "client_removed",
]


class ProcedureRules(Strict):
    """What counts as an event worth a call (the module's docstring says how each is read)."""

    payment_days: int = Field(default=60, ge=1)  # payments older than this call for nobody
    overpayment_minimum: float = Field(default=1.0, ge=0)  # in the loan's currency
    early_repayment_days: int = Field(default=30, ge=1)  # closed at most this long ago
    closing_window_days: int = Field(default=7, ge=0)  # the lump paid this close to closing
    early_repayment_share: float = Field(default=0.5, gt=0, le=1)  # of the loan's amount
    monitoring_days: int = Field(default=30, ge=1)  # after disbursement
    monitoring_window_days: int = Field(default=14, ge=1)
    document_days: int = Field(default=30, ge=0)


@dataclass(frozen=True)
class PaymentFacts:
    payment_id: int
    external_id: str
    amount: Decimal
    paid_at: datetime
    matched: bool
    payer_name: str
    payer_number: str | None = None  # E.164, dialable
    payer_client_id: int | None = None  # the payer, when the file names a client of ours
    loan_id: int | None = None
    loan_client_id: int | None = None
    loan_client_name: str | None = None


@dataclass(frozen=True)
class LoanFacts:
    loan_id: int
    external_id: str
    client_id: int
    opened_at: datetime
    closed_at: datetime | None
    amount: Decimal | None
    paid: Decimal = Decimal(0)  # the matched payments on it, added up
    # The matched payments (when, how much) of a loan closed lately: only early repayment
    # reads them, so the adapter may leave them out for other loans.
    payments: tuple[tuple[datetime, Decimal], ...] = ()


@dataclass(frozen=True)
class DocumentFacts:
    client_id: int
    client_external_id: str
    document_expiry: date | None


Facts = PaymentFacts | LoanFacts | DocumentFacts


@dataclass(frozen=True)
class TaskNeed:
    """A task the facts call for. ``number`` None: the client's first phone (the adapter
    looks it up; with none, there is nobody to call and no task)."""

    kind: ProcedureKind
    cause_key: str
    client_id: int | None
    number: str | None = None
    payment_id: int | None = None
    loan_id: int | None = None


@dataclass(frozen=True)
class TaskFacts:
    """A stored task, as ``recheck`` reads it."""

    kind: ProcedureKind
    cause_key: str
    status: str = "open"  # open | closed
    closed_reason: str | None = None


# ---- generation ---------------------------------------------------------------------------


def _name_words(name: str) -> tuple[str, ...]:
    # "Hodžić Amra", "AMRA HODZIC" and "amra  hodžić" are one person on a bank statement.
    plain = unicodedata.normalize("NFKD", name.casefold().replace("đ", "d"))
    letters = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return tuple(sorted(letters.split()))


def same_person(payer_name: str, client_name: str) -> bool:
    return bool(_name_words(payer_name)) and _name_words(payer_name) == _name_words(client_name)


def is_third_party(p: PaymentFacts) -> bool:
    """Matched to a loan, and paid by someone other than the loan's client."""
    if not p.matched or p.loan_id is None or p.loan_client_id is None:
        return False
    if p.payer_client_id is not None:
        return p.payer_client_id != p.loan_client_id
    return not same_person(p.payer_name, p.loan_client_name or "")


def payment_needs(p: PaymentFacts, now: datetime, rules: ProcedureRules) -> list[TaskNeed]:
    if not now - timedelta(days=rules.payment_days) <= p.paid_at <= now:
        return []
    cause = f"payment:{p.external_id}"
    if not p.matched:
        if p.payer_number is None and p.payer_client_id is None:
            return []  # nobody to ask whose it is
        kind = ProcedureKind.UNKNOWN_PAYMENT
        return [TaskNeed(kind, cause, p.payer_client_id, p.payer_number, payment_id=p.payment_id)]
    if is_third_party(p):
        kind = ProcedureKind.THIRD_PARTY_PAYMENT
        return [TaskNeed(kind, cause, p.loan_client_id, None, p.payment_id, p.loan_id)]
    return []


def is_overpaid(loan: LoanFacts, rules: ProcedureRules) -> bool:
    if loan.amount is None:
        return False
    return loan.paid - loan.amount >= max(Decimal("0.01"), _money(rules.overpayment_minimum))


def _money(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def closing_payment(loan: LoanFacts, rules: ProcedureRules) -> Decimal | None:
    """The largest matched payment in the closing window of a closed loan."""
    if loan.closed_at is None:
        return None
    since = loan.closed_at - timedelta(days=rules.closing_window_days)
    amounts = [amount for at, amount in loan.payments if since <= at <= loan.closed_at]
    return max(amounts, default=None)


def is_early_repayment(loan: LoanFacts, now: datetime, rules: ProcedureRules) -> bool:
    if loan.closed_at is None or loan.amount is None or not loan.amount:
        return False
    if not now - timedelta(days=rules.early_repayment_days) <= loan.closed_at <= now:
        return False
    lump = closing_payment(loan, rules)
    share = Decimal(str(rules.early_repayment_share))
    return lump is not None and lump >= loan.amount * share


def is_monitored(loan: LoanFacts, now: datetime, rules: ProcedureRules) -> bool:
    if loan.closed_at is not None and loan.closed_at <= now:
        return False
    age = now - loan.opened_at
    start = timedelta(days=rules.monitoring_days)
    return start <= age < start + timedelta(days=rules.monitoring_window_days)


def loan_needs(loan: LoanFacts, now: datetime, rules: ProcedureRules) -> list[TaskNeed]:
    cause = f"loan:{loan.external_id}"
    kinds = []
    if is_overpaid(loan, rules):
        kinds.append(ProcedureKind.OVERPAYMENT)
    if is_early_repayment(loan, now, rules):
        kinds.append(ProcedureKind.EARLY_REPAYMENT)
    if is_monitored(loan, now, rules):
        kinds.append(ProcedureKind.LOAN_MONITORING)
    return [TaskNeed(kind, cause, loan.client_id, loan_id=loan.loan_id) for kind in kinds]


def document_cause(client_external_id: str, expiry: date) -> str:
    return f"document:{client_external_id}:{expiry.isoformat()}"


def document_needs(d: DocumentFacts, now: datetime, rules: ProcedureRules) -> list[TaskNeed]:
    if d.document_expiry is None:
        return []
    today = now.date()
    if not today <= d.document_expiry <= today + timedelta(days=rules.document_days):
        return []
    cause = document_cause(d.client_external_id, d.document_expiry)
    return [TaskNeed(ProcedureKind.DOCUMENT_EXPIRY, cause, d.client_id)]


# ---- re-check at dial time ----------------------------------------------------------------


def recheck(
    task: TaskFacts, facts: Facts | None, now: datetime, rules: ProcedureRules | None = None
) -> str | None:
    """Why ``task`` is no longer to be called (a ``ClosedReason``, or the reason it was
    closed with), None while it stands. ``facts``: the current facts of the task's payment,
    loan or client (None: no longer in the CRM)."""
    rules = rules or ProcedureRules()
    if task.status != "open":
        return task.closed_reason or "closed"
    kind = task.kind
    if kind in PAYMENT_KINDS:
        if not isinstance(facts, PaymentFacts):
            return "payment_removed"
        if kind is ProcedureKind.UNKNOWN_PAYMENT:
            return "payment_matched" if facts.matched else None
        if not facts.matched or facts.loan_id is None:
            return "payment_unmatched"
        return None if is_third_party(facts) else "payer_is_client"
    if kind in LOAN_KINDS:
        if not isinstance(facts, LoanFacts):
            return "loan_removed"
        closed = facts.closed_at is not None and facts.closed_at <= now
        if kind is ProcedureKind.OVERPAYMENT:
            return None if is_overpaid(facts, rules) else "no_longer_overpaid"
        if kind is ProcedureKind.EARLY_REPAYMENT:
            return None if closed else "loan_reopened"
        return "loan_closed" if closed else None
    if not isinstance(facts, DocumentFacts):
        return "client_removed"
    expiry = facts.document_expiry
    if expiry is not None and document_cause(facts.client_external_id, expiry) == task.cause_key:
        return None
    wanted = task.cause_key.rsplit(":", 1)[-1]
    if expiry is not None and expiry.isoformat() > wanted:
        return "document_renewed"
    return "document_changed"


# ---- what the agent sees and says ---------------------------------------------------------

PURPOSES: dict[ProcedureKind, str] = {
    ProcedureKind.UNKNOWN_PAYMENT: "Unknown payment: find out whose loan it is for",
    ProcedureKind.THIRD_PARTY_PAYMENT: "Payment by someone else: confirm it with the client",
    ProcedureKind.EARLY_REPAYMENT: "Early repayment: thank the client, ask what comes next",
    ProcedureKind.OVERPAYMENT: "Overpayment: agree on a refund or a credit",
    ProcedureKind.LOAN_MONITORING: "Loan monitoring: follow up on the use of the funds",
    ProcedureKind.DOCUMENT_EXPIRY: "ID document expiring: ask for the renewed document",
}

SCRIPTS: dict[ProcedureKind, dict[str, str]] = {
    ProcedureKind.UNKNOWN_PAYMENT: {
        "en": (
            "We received a payment from you that we could not match to a loan. Could you tell "
            "us the loan or the person it is for? We will book it as soon as we know."
        ),
        "bs": (
            "Primili smo Vašu uplatu koju nismo mogli povezati ni sa jednim kreditom. Možete "
            "li nam reći za koji kredit ili za koga je uplata? Proknjižit ćemo je čim saznamo."
        ),
    },
    ProcedureKind.THIRD_PARTY_PAYMENT: {
        "en": (
            "A payment on your loan came from another person. Do you know about it and agree "
            "that we book it to your loan?"
        ),
        "bs": (
            "Na Vaš kredit je stigla uplata druge osobe. Da li znate za nju i da li se slažete "
            "da je proknjižimo na Vaš kredit?"
        ),
    },
    ProcedureKind.EARLY_REPAYMENT: {
        "en": (
            "Thank you for repaying your loan early. May we ask why, and whether there is "
            "anything you need from us next?"
        ),
        "bs": (
            "Hvala Vam što ste prijevremeno otplatili kredit. Smijemo li pitati zašto, i da li "
            "Vam je od nas nešto potrebno u budućnosti?"
        ),
    },
    ProcedureKind.OVERPAYMENT: {
        "en": (
            "You have paid more than your loan required. Would you like the difference "
            "refunded to your account, or kept as a credit?"
        ),
        "bs": (
            "Uplatili ste više nego što je kredit zahtijevao. Želite li da Vam razliku vratimo "
            "na račun ili da je zadržimo kao pretplatu?"
        ),
    },
    ProcedureKind.LOAN_MONITORING: {
        "en": (
            "We are calling about the loan you took recently: how are the funds being used, "
            "and is everything going as planned?"
        ),
        "bs": (
            "Zovemo u vezi kredita koji ste nedavno podigli: kako koristite sredstva i da li "
            "sve ide po planu?"
        ),
    },
    ProcedureKind.DOCUMENT_EXPIRY: {
        "en": (
            "Your ID document on file expires soon. Please bring or send us a copy of the "
            "renewed document when you have it."
        ),
        "bs": (
            "Vaš lični dokument koji imamo uskoro ističe. Molimo Vas da nam donesete ili "
            "pošaljete kopiju novog dokumenta kada ga dobijete."
        ),
    },
}
DEFAULT_LANGUAGE = "en"
# As the screen-pop's greeting: one text for Bosnian, Croatian and Serbian.
LANGUAGE_TEXTS = {"bs": "bs", "hr": "bs", "sr": "bs", "en": "en"}


_KIND_VALUES = frozenset(k.value for k in ProcedureKind)


def purpose_of(kind: ProcedureKind | str) -> str:
    return PURPOSES[ProcedureKind(kind)]


def script_for(kind: ProcedureKind | str, language: str | None) -> str:
    """What the agent says, in the client's language when we have the text, else English
    (``sr-Latn`` reads as ``sr``)."""
    texts = SCRIPTS[ProcedureKind(kind)]
    base = (language or "").replace("_", "-").split("-")[0].lower()
    return texts[LANGUAGE_TEXTS.get(base, DEFAULT_LANGUAGE)]


def screenpop_purpose(purpose: str | None, language: str | None) -> dict[str, str] | None:
    """The screen-pop's part for a campaign contact's ``purpose``: its kind, label and
    script; None for a contact without one (or a purpose this version does not know)."""
    if purpose not in _KIND_VALUES:
        return None
    kind = ProcedureKind(purpose)
    return {"kind": kind.value, "purpose": purpose_of(kind), "script": script_for(kind, language)}
