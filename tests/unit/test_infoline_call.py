"""The info line's state machine: events in, actions out."""

from __future__ import annotations

from datetime import UTC, datetime

from ari_app.infoline import Answer, CallState, Hangup, InfolineCall, Play, ari_time


def test_start_answers_and_plays_the_greeting() -> None:
    call = InfolineCall("c1", "sound:hello-world")
    assert call.on_start() == [Answer(), Play("sound:hello-world", "c1-greeting")]
    assert call.state is CallState.GREETING


def test_duplicated_start_changes_nothing() -> None:
    call = InfolineCall("c1", "sound:x")
    call.on_start()
    assert call.on_start() == []


def test_greeting_end_hangs_up_and_the_call_completes() -> None:
    call = InfolineCall("c1", "sound:x")
    call.on_start()
    assert call.on_playback_finished("c1-greeting") == [Hangup()]
    assert call.on_hangup_request() is True
    assert call.on_hangup_request() is False  # the second (real) request is no news
    call.on_destroyed()
    assert call.outcome == "completed"


def test_unrelated_or_repeated_playback_end_does_nothing() -> None:
    call = InfolineCall("c1", "sound:x")
    call.on_start()
    assert call.on_playback_finished("other") == []
    assert call.on_playback_finished("c1-greeting") == [Hangup()]
    assert call.on_playback_finished("c1-greeting") == []


def test_caller_hanging_up_in_the_greeting_is_abandoned() -> None:
    call = InfolineCall("c1", "sound:x")
    call.on_start()
    assert call.on_hangup_request() is True
    # The playback stops because of the hang-up: that must not look like a completed call.
    call.on_playback_finished("c1-greeting")
    call.on_destroyed()
    assert call.outcome == "abandoned_in_ivr"


def test_call_that_never_started_is_lost() -> None:
    assert InfolineCall("c1", "sound:x").outcome == "lost"


def test_ari_timestamps_are_read_as_utc() -> None:
    at = ari_time("2026-11-23T16:40:00.123+0100")
    assert at == datetime(2026, 11, 23, 15, 40, 0, 123000, tzinfo=UTC)
    assert at.tzinfo is UTC
