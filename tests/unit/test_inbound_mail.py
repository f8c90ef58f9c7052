"""Received mail read into an inquiry's parts (mail/inbound.py), on messages shaped as the
call centre gets them: Bosnian letters in quoted-printable and base64 (UTF-8 and
Windows-1250), plain and HTML alternatives, HTML only, attachments with awkward names, an
Outlook reply, a bounce, out-of-office replies; and broken mail, which reads to what can be
read and never raises."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail.inbound import MAX_FILENAME, html_to_text, parse_mail, safe_filename


def raw(text: str) -> bytes:
    """A message written readably here, with the CRLF line ends it travels with."""
    return text.lstrip("\n").replace("\n", "\r\n").encode("utf-8")


QUOTED_PRINTABLE = raw("""
Return-Path: <ana.saric@example.ba>
From: =?UTF-8?Q?Ana_=C5=A0ari=C4=87?= <ana.saric@example.ba>
To: Centrala upiti <upiti@centrala.test>, drugi@centrala.test
Cc: "Hodžić, Emir" <emir@example.ba>
Subject: =?UTF-8?Q?Upit_o_kreditu_=E2=80=93_=C4=8Dekam_odgovor?=
Message-ID: <CAF1x@mail.example.ba>
Date: Tue, 1 Dec 2026 09:15:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Po=C5=A1tovani,
=C5=BEelim informacije o kreditu za =C4=8Dlanove =C4=91a=C4=8Dkog doma.
Hvala!
""")


def test_bosnian_letters_in_quoted_printable_are_read() -> None:
    mail = parse_mail(QUOTED_PRINTABLE)
    assert mail.subject == "Upit o kreditu – čekam odgovor"
    assert mail.from_name == "Ana Šarić"
    assert mail.from_address == "ana.saric@example.ba"
    assert mail.to == ("upiti@centrala.test", "drugi@centrala.test")
    assert mail.cc == ("emir@example.ba",)
    assert mail.message_id == "CAF1x@mail.example.ba"
    assert mail.date == datetime(2026, 12, 1, 8, 15, tzinfo=UTC)
    assert mail.date is not None and mail.date.utcoffset() == timedelta(hours=1)
    assert mail.text == (
        "Poštovani,\nželim informacije o kreditu za članove đačkog doma.\nHvala!\n"
    )
    assert not mail.text_from_html
    assert mail.attachments == ()
    assert not mail.is_auto_reply()
    assert ("Subject", "Upit o kreditu – čekam odgovor") in mail.headers


def test_base64_in_windows_1250_is_read() -> None:
    body = "Molim vas, gdje je najbliža poslovnica? Šifra: ĐĆČŽŠ".encode("cp1250")
    subject = base64.b64encode("Pitanje – šalter".encode("cp1250")).decode()
    message = raw(f"""
From: =?windows-1250?B?{base64.b64encode("Đorđe Čolić".encode("cp1250")).decode()}?=
 <djordje@example.ba>
To: upiti@centrala.test
Subject: =?windows-1250?B?{subject}?=
Content-Type: text/plain; charset="windows-1250"
Content-Transfer-Encoding: base64

""") + base64.encodebytes(body)
    mail = parse_mail(message)
    assert mail.from_name == "Đorđe Čolić"
    assert mail.subject == "Pitanje – šalter"
    assert mail.text.strip() == "Molim vas, gdje je najbliža poslovnica? Šifra: ĐĆČŽŠ"


ALTERNATIVE = raw("""
From: emir@example.ba
To: upiti@centrala.test
Subject: Radno vrijeme
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Koje je radno vrijeme subotom?
--alt
Content-Type: text/html; charset=utf-8

<html><body><p>Koje je <b>radno vrijeme</b> subotom?</p></body></html>
--alt--
""")


def test_of_plain_and_html_alternatives_the_plain_text_is_read() -> None:
    mail = parse_mail(ALTERNATIVE)
    assert mail.text.strip() == "Koje je radno vrijeme subotom?"
    assert not mail.text_from_html
    assert mail.attachments == ()  # the HTML alternative is the same text, not a file


HTML_ONLY = raw("""
From: webmail@example.ba
To: upiti@centrala.test
Subject: Samo HTML
Content-Type: text/html; charset=utf-8

<html><head><style>p {color: red}</style><script>alert("x")</script></head>
<body><p>Dobar   dan,&nbsp;trebam <a href="https://example.ba/racun/7">ovaj račun</a>.</p>
<ul><li>prvo</li><li>drugo</li></ul>
<div>Lijep pozdrav<br>Mirza</div>
<blockquote><p>Staro pitanje &amp; odgovor</p></blockquote>
</body></html>
""")


def test_html_only_is_turned_into_text() -> None:
    mail = parse_mail(HTML_ONLY)
    assert mail.text_from_html
    assert mail.text == (
        "Dobar dan, trebam ovaj račun <https://example.ba/racun/7>.\n"
        "- prvo\n"
        "- drugo\n"
        "Lijep pozdrav\n"
        "Mirza\n"
        "> Staro pitanje & odgovor"
    )
    assert "alert" not in mail.text and "color" not in mail.text
    # The quoted block is told apart from the new text, as in a plain-text reply.
    assert mail.reply().new == "Dobar dan, trebam ovaj račun <https://example.ba/racun/7>.\n" + (
        "- prvo\n- drugo\nLijep pozdrav\nMirza"
    )


def test_html_keeps_preformatted_lines_and_marks_a_rule() -> None:
    text = html_to_text("<pre>a  b\n  c</pre><hr><p>x</p>")
    assert text == "a  b\n  c\n" + "_" * 32 + "\nx"


ATTACHMENT = raw("""
From: klijent@example.ba
To: upiti@centrala.test
Subject: Dokumenti
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain; charset=utf-8

U prilogu su dokumenti.
--mix
Content-Type: application/pdf
Content-Disposition: attachment; filename*=UTF-8''Izvod%20ra%C4%8Duna%20%C5%A1tednja.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IK
--mix
Content-Type: image/png; name="../../etc/passwd"
Content-Disposition: inline; filename="../../etc/passwd"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--mix
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAEC
--mix--
""")


def test_attachments_are_kept_with_safe_names() -> None:
    mail = parse_mail(ATTACHMENT)
    assert mail.text.strip() == "U prilogu su dokumenti."
    assert [(a.filename, a.content_type, a.data) for a in mail.attachments] == [
        ("Izvod računa štednja.pdf", "application/pdf", b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n"),
        ("passwd", "image/png", b"\x89PNG\r\n\x1a\n"),
        ("attachment-3.bin", "application/octet-stream", b"\x00\x01\x02"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("C:\\Users\\ana\\Desktop\\ugovor.docx", "ugovor.docx"),
        ("../../../etc/shadow", "shadow"),
        ("ra\x00ču\nn\u202e.pdf", "račun.pdf"),  # NUL, a line break, a right-to-left mark
        ("..", "attachment-4.pdf"),
        (".bashrc", "bashrc"),
        ("   ", "attachment-4.pdf"),
        (None, "attachment-4.pdf"),
        ("a" * 300 + ".pdf", "a" * (MAX_FILENAME - 4) + ".pdf"),
        ("b" * 300, "b" * MAX_FILENAME),
    ],
)
def test_attachment_names_lose_paths_and_control_characters(
    name: str | None, expected: str
) -> None:
    assert safe_filename(name, "application/pdf", 4) == expected


OUTLOOK_REPLY = raw("""
From: "Kovačević, Lejla" <lejla@firma.ba>
To: "Centrala" <upiti+inq42@centrala.test>
Subject: RE: Upit o kreditu [#INQ-42]
Thread-Topic: Upit o kreditu
In-Reply-To: <reply-1@centrala.test>
References: <CAF1x@mail.example.ba> <reply-1@centrala.test>
Message-ID: <AM0PR01MB@eurprd01.prod.outlook.com>
Date: Wed, 2 Dec 2026 10:01:02 +0000
Content-Type: text/plain; charset="iso-8859-2"
Content-Transfer-Encoding: quoted-printable

Hvala, to je sve =B9to sam trebala.

Lejla Kova=E8evi=E6
Firma d.o.o.

________________________________
From: Centrala <upiti@centrala.test>
Sent: Tuesday, December 1, 2026 3:00 PM
To: Kova=E8evi=E6, Lejla <lejla@firma.ba>
Subject: Re: Upit o kreditu [#INQ-42]

Po=B9tovana, kredit mo=BEete ...
""")


def test_an_outlook_reply_is_threaded_and_its_new_text_set_apart() -> None:
    mail = parse_mail(OUTLOOK_REPLY)
    assert mail.in_reply_to == "reply-1@centrala.test"
    assert mail.references == ("CAF1x@mail.example.ba", "reply-1@centrala.test")
    key = mail.thread_key()
    assert key.message_ids == ("reply-1@centrala.test", "CAF1x@mail.example.ba")
    assert key.inquiry_id == 42
    reply = mail.reply()
    assert reply.new == "Hvala, to je sve što sam trebala.\n\nLejla Kovačević\nFirma d.o.o."
    assert reply.quoted.splitlines()[1] == "From: Centrala <upiti@centrala.test>"
    assert "Poštovana, kredit možete" in reply.quoted
    assert not mail.is_auto_reply()


BOUNCE = raw("""
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.ba>
To: upiti@centrala.test
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not be delivered.
--b1
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.ba

Final-Recipient: rfc822; nema@example.ba
Action: failed
Status: 5.1.1
--b1
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: upiti@centrala.test
To: nema@example.ba
Subject: Re: Upit [#INQ-7]
Message-ID: <out-7@centrala.test>

Odgovor.
--b1--
""")


def test_a_bounce_is_recognised_and_its_report_kept() -> None:
    mail = parse_mail(BOUNCE)
    assert mail.is_auto_reply()
    assert mail.text.startswith("I'm sorry to have to inform you")
    kinds = [(a.filename, a.content_type) for a in mail.attachments]
    assert kinds == [
        ("attachment-1.bin", "message/delivery-status"),
        ("attachment-2.eml", "message/rfc822"),
    ]
    returned = parse_mail(mail.attachments[1].data)
    assert returned.message_id == "out-7@centrala.test"
    assert b"Status: 5.1.1" in mail.attachments[0].data


@pytest.mark.parametrize(
    "header",
    [
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
        "Precedence: bulk",
        "Precedence: auto_reply",
        "X-Auto-Response-Suppress: All",
    ],
)
def test_out_of_office_replies_are_recognised(header: str) -> None:
    message = raw(f"""
From: Amra <amra@example.ba>
To: upiti@centrala.test
Subject: =?UTF-8?Q?Odsutna_sam_/_Out_of_office?=
{header}
Content-Type: text/plain; charset=utf-8

Odsutna sam do ponedjeljka.
""")
    mail = parse_mail(message)
    assert mail.is_auto_reply()
    assert mail.subject == "Odsutna sam / Out of office"


def test_a_person_writing_auto_submitted_no_is_not_a_machine() -> None:
    message = raw("""
From: Amra <amra@example.ba>
Auto-Submitted: no
Subject: Pitanje

Tekst.
""")
    assert not parse_mail(message).is_auto_reply()


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\r\n\r\n",
        b"no headers at all, just text",
        raw("""
From: <<<broken@@
To: ;;;
Subject: =?x-unknown?Q?=C5=A0?=
Date: the day before yesterday
Message-ID: no brackets
Content-Type: text/plain; charset=x-no-such-charset

body
"""),
        raw("""
Subject: never closed
Content-Type: multipart/mixed; boundary="nope"

--nope
Content-Type: text/plain

first part, and then the message ends
"""),
        "From: Šemsa <semsa@example.ba>\r\nSubject: sirovi UTF-8 ščćžđ\r\n\r\nTekst č\r\n".encode(),
        b"Subject: =?utf-8?B?broken base64?=\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@@\r\n",
    ],
)
def test_malformed_mail_reads_to_what_can_be_read(message: bytes) -> None:
    mail = parse_mail(message)
    assert isinstance(mail.text, str)
    for text in [mail.subject, mail.text, mail.from_name, *(v for _, v in mail.headers)]:
        text.encode("utf-8")  # nothing a database would refuse (no lone surrogates)
        assert "\x00" not in text


def test_raw_8bit_headers_are_read_as_utf8() -> None:
    message = "From: Šemsa <semsa@example.ba>\r\nSubject: sirovi ščćžđ\r\n\r\nTekst č\r\n"
    mail = parse_mail(message.encode())
    assert mail.subject == "sirovi ščćžđ"
    assert mail.from_name == "Šemsa"
    assert mail.text.strip() == "Tekst č"


def test_missing_or_unreadable_parts_get_defaults() -> None:
    mail = parse_mail(
        b"Subject: x\r\nDate: the day before yesterday\r\nMessage-ID: no brackets\r\n\r\n"
    )
    assert (mail.message_id, mail.date, mail.from_address, mail.from_name) == (None, None, "", "")
    assert mail.references == () and mail.in_reply_to is None
    assert parse_mail(b"").subject == ""


def test_an_unknown_charset_falls_back_to_utf8_then_windows_1250() -> None:
    utf8 = parse_mail(b"Content-Type: text/plain; charset=x-nope\r\n\r\n" + "čž".encode())
    cp1250 = parse_mail(b"Content-Type: text/plain; charset=x-nope\r\n\r\n" + "čž".encode("cp1250"))
    assert (utf8.text, cp1250.text) == ("čž", "čž")


def test_a_date_in_minus_zero_is_utc() -> None:
    mail = parse_mail(b"Date: Wed, 02 Dec 2026 10:00:00 -0000\r\n\r\n")
    assert mail.date == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    later = parse_mail(b"Date: Wed, 02 Dec 2026 10:00:00 +0530\r\n\r\n").date
    assert later is not None and later.tzinfo == timezone(timedelta(hours=5, minutes=30))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_no_bytes_make_parsing_raise(data: bytes) -> None:
    parse_mail(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"Content-Type: multipart/mixed; boundary=b\r\n",
                b"Content-Type: text/html; charset=utf-8\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Disposition: attachment; filename*=UTF-8''%C5%A1.pdf\r\n",
                b"Subject: =?utf-8?q?=C5=A1?=\r\n",
                b"From: =?utf-8?b?w4U=?= <a@b>\r\n",
                b"\r\n",
                b"--b\r\n",
                b"--b--\r\n",
                b"<p>x</p>\r\n",
                b"\xc5\xa1\xff\r\n",
            ]
        ),
        max_size=30,
    )
)
def test_no_arrangement_of_mime_pieces_makes_parsing_raise(pieces: list[bytes]) -> None:
    mail = parse_mail(b"".join(pieces))
    mail.text.encode("utf-8")
    for attachment in mail.attachments:
        assert "/" not in attachment.filename and attachment.filename
