"""The IMAP server's answers as the reader reads them (mail/imap.py), in the shapes
aioimaplib hands them over: SEARCH results, FETCH results with the message as a literal
(the UID before or after it, flag changes the server slips in, a message cut at the size
read), and the mailbox settings that refuse a line break (it would end the IMAP command)."""

from __future__ import annotations

import pytest

from mail.imap import Fetched, ImapMailbox, fetched_messages, search_uids

MESSAGE = b"From: ana@example.ba\r\nSubject: x\r\n\r\nTekst\r\n"


def test_search_results_are_read_in_either_shape() -> None:
    assert search_uids([b"7 3 12", b"Search completed (0.001 + 0.000 secs)."]) == [3, 7, 12]
    assert search_uids([b"SEARCH 4 4 5", b"Search completed."]) == [4, 5]
    assert search_uids([b"", b"Search completed."]) == []
    assert search_uids([b"Search completed."]) == []  # the tagged line is never read as UIDs


def test_fetch_results_are_read_with_the_uid_before_or_after_the_literal() -> None:
    size = len(MESSAGE)
    lines = [
        f"1 FETCH (UID 7 RFC822.SIZE {size} BODY[]<0> {{{size}}}".encode(),
        bytearray(MESSAGE),
        b")",
        b"3 FETCH (FLAGS (\\Seen))",  # another session marked a message meanwhile
        f"2 FETCH (RFC822.SIZE {size} BODY[]<0> {{{size}}}".encode(),
        bytearray(MESSAGE),
        b" UID 9)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    assert fetched_messages(lines, 1796207970) == [
        Fetched(1796207970, 7, MESSAGE, size, False),
        Fetched(1796207970, 9, MESSAGE, size, False),
    ]


def test_a_message_larger_than_read_is_marked_truncated() -> None:
    lines = [b"1 FETCH (UID 4 RFC822.SIZE 90000000 BODY[]<0> {10}", bytearray(MESSAGE[:10]), b")"]
    [fetched] = fetched_messages([*lines, b"Fetch completed."], 5)
    assert (fetched.uid, fetched.size, fetched.truncated, fetched.raw) == (
        4,
        90000000,
        True,
        MESSAGE[:10],
    )


@pytest.mark.parametrize("field", ["host", "user", "password", "folder"])
def test_a_line_break_or_nul_in_the_mailbox_settings_is_refused(field: str) -> None:
    fields = {"host": "imap.example.ba", "user": "upiti", "password": "x", "folder": "INBOX"}
    with pytest.raises(ValueError, match=field):
        ImapMailbox(**{**fields, field: fields[field] + "\r\nA1 DELETE INBOX"})
    with pytest.raises(ValueError, match=field):
        ImapMailbox(**{**fields, field: fields[field] + "\x00"})


def test_the_password_is_never_in_the_mailbox_repr() -> None:
    box = ImapMailbox("imap.example.ba", 993, "upiti@centrala.ba", "tajna-lozinka")
    assert "tajna" not in repr(box) and "upiti@centrala.ba@imap.example.ba/INBOX" in repr(box)
