"""Call recording's pure decisions (core/recording.py), the IVR's start of the recording when
the notice ends and the notice in a known client's language (core/ivr.py), the flow's
recording setting checked (dialplan/validate.py), and who may hear one (web/auth.py)."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from core.ivr import IVR, PlayPrompt, RouteTo, StartRecording
from core.recording import (
    RecordingError,
    Stretch,
    audio_facts,
    expired,
    file_name,
    pause,
    paused_now,
    queue_recording,
    resume,
    retention_cutoff,
    stretch_offsets,
)
from core.routing import Caller
from dialplan.model import Flow
from dialplan.validate import load_flow, validate
from web.auth import User, may_hear_recording

FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
FLOW = Flow.model_validate(yaml.safe_load(FLOW_FILE.read_text()))
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# ---- whether the call is recorded, and from when -------------------------------------------


def test_the_recording_starts_when_the_notice_has_been_played_not_before() -> None:
    ivr = IVR(FLOW, Caller())
    first = ivr.start()
    assert [a.prompt for a in first if isinstance(a, PlayPrompt)] == ["recording_notice"]
    assert not any(isinstance(a, StartRecording) for a in first)
    nxt = ivr.on_playback_finished(first[-1].playback_id)  # type: ignore[union-attr]
    assert nxt[0] == StartRecording()
    assert [a for a in nxt if isinstance(a, StartRecording)] == [StartRecording()]


def test_a_key_that_skips_the_notice_starts_the_recording_too() -> None:
    ivr = IVR(FLOW, Caller(client_id=1, language="bs"))
    ivr.start()
    actions = ivr.on_dtmf("0")
    assert StartRecording() in actions and RouteTo("operator") in actions
    assert actions.index(StartRecording()) < actions.index(RouteTo("operator"))


def test_a_flow_without_recording_never_starts_one() -> None:
    data = yaml.safe_load(FLOW_FILE.read_text())
    del data["recording"]
    ivr = IVR(Flow.model_validate(data), Caller())
    first = ivr.start()
    nxt = ivr.on_playback_finished(first[-1].playback_id)  # type: ignore[union-attr]
    assert not any(isinstance(a, StartRecording) for a in first + nxt + ivr.on_dtmf("0"))


@pytest.mark.parametrize(
    ("recording", "queue", "change"),
    [
        (True, None, None),
        (False, None, None),
        (True, True, None),
        (False, False, None),
        (False, True, "start"),
        (True, False, "stop"),
    ],
)
def test_a_queue_turns_recording_on_or_off_or_follows_the_flow(
    recording: bool, queue: bool | None, change: str | None
) -> None:
    assert queue_recording(recording, queue) == change


def test_the_recording_must_start_after_a_play_node_that_exists() -> None:
    text = FLOW_FILE.read_text()
    assert not [p for p in validate(load_flow(text, "f.yaml")) if "recording" in p]
    for after, said in (("nowhere", "no node named 'nowhere'"), ("main_menu", "menu node")):
        flow = load_flow(text.replace("{after: notice}", f"{{after: {after}}}"), "f.yaml")
        assert any(said in p and p.startswith("recording.after") for p in validate(flow))


# ---- the notice in the client's language ----------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "language"),
    [
        (Caller(client_id=7, language="en"), "en"),  # the CRM knows them: their language
        (Caller(client_id=7, language="de"), "bs"),  # a language the line does not speak
        (Caller(client_id=7, language=None), "bs"),
        (Caller(), "bs"),  # unknown: the line's default, before they choose
    ],
)
def test_the_notice_plays_in_the_clients_language_when_the_crm_knows_it(
    caller: Caller, language: str
) -> None:
    (notice,) = [a for a in IVR(FLOW, caller).start() if isinstance(a, PlayPrompt)]
    assert (notice.prompt, notice.language) == ("recording_notice", language)


# ---- paused stretches -----------------------------------------------------------------------


def test_pause_and_resume_make_stretches_and_refuse_doubles() -> None:
    stretches = pause([], at(10), "anna")
    assert paused_now(stretches)
    with pytest.raises(RecordingError) as twice:
        pause(stretches, at(11), "anna")
    assert twice.value.error_id == "recording_paused_already" and twice.value.status == 409
    stretches = resume(stretches, at(25))
    assert stretches == [Stretch(at(10), at(25), "anna")] and not paused_now(stretches)
    with pytest.raises(RecordingError) as not_paused:
        resume(stretches, at(26))
    assert not_paused.value.error_id == "recording_not_paused"
    again = resume(pause(stretches, at(40), "sara"), at(41))
    assert [s.by for s in again] == ["anna", "sara"]


def test_a_resume_stamped_before_its_pause_is_an_empty_stretch_not_a_negative_one() -> None:
    (stretch,) = resume(pause([], at(10), None), at(9))
    assert stretch.until == stretch.since


def test_stretches_survive_json() -> None:
    stretches = [Stretch(at(1), at(2), "anna"), Stretch(at(3), None, None)]
    assert [Stretch.from_json(s.to_json()) for s in stretches] == stretches


def test_offsets_are_seconds_into_the_file_clipped_and_an_open_stretch_runs_to_the_end() -> None:
    stretches = [
        Stretch(at(-5), at(2)),  # paused before the file began (clock skew): from 0
        Stretch(at(10), at(14.5)),
        Stretch(at(50), None),  # the caller hung up while paused
        Stretch(at(70), at(80)),  # past the end of the file
    ]
    assert stretch_offsets(T0, stretches, 60.0) == [
        (0.0, 2.0),
        (10.0, 14.5),
        (50.0, 60.0),
        (60.0, 60.0),
    ]


# ---- what a finished file holds -------------------------------------------------------------


def wav_head(data_bytes: int, *, rate: int = 8000, declared: int | None = None) -> bytes:
    size = data_bytes if declared is None else declared
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )


def test_a_closed_wav_says_its_length_one_still_written_is_incomplete() -> None:
    closed = audio_facts("wav", wav_head(16000 * 3), 44 + 16000 * 3)
    assert (closed.seconds, closed.complete) == (3.0, True)
    # Asterisk writes the sizes at close: a header saying 0 with data after it is open.
    open_ = audio_facts("wav", wav_head(0, declared=0), 44 + 32000)
    assert (open_.seconds, open_.complete) == (2.0, False)
    # Nothing written yet (held in the writer's buffer), or closed with no audio at all: the
    # two cannot be told apart, so it is not taken as complete (the keeper waits a while).
    assert not audio_facts("wav", wav_head(0), 44).complete
    assert not audio_facts("wav", b"garbage", 100).complete
    assert audio_facts("wav", wav_head(32000, rate=16000), 44 + 32000).seconds == 1.0


def test_a_gsm_file_is_33_bytes_per_20_ms() -> None:
    assert audio_facts("gsm", b"", 33 * 50 * 60).seconds == 60.0


def test_file_names_are_the_calls_id_and_refuse_unknown_formats() -> None:
    assert file_name("abc", 1, "wav") == "abc.wav"
    assert file_name("abc", 2, "gsm") == "abc-2.gsm"
    with pytest.raises(ValueError, match="format"):
        file_name("abc", 1, "mp3")


# ---- retention --------------------------------------------------------------------------------


def test_retention_cuts_off_days_ago_and_zero_keeps_for_good() -> None:
    cutoff = retention_cutoff(T0, 90)
    assert cutoff == T0 - timedelta(days=90)
    assert expired(T0 - timedelta(days=91), cutoff)
    assert not expired(T0 - timedelta(days=89), cutoff)
    assert not expired(None, cutoff)  # still recording
    assert retention_cutoff(T0, 0) is None and not expired(T0 - timedelta(days=9999), None)


# ---- who may hear it ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "agent", "handled", "may"),
    [
        ("supervisor", "sara", set(), True),
        ("admin", "adam", set(), True),
        ("agent", "anna", {"anna"}, True),
        ("agent", "anna", {"olga", "anna"}, True),  # transferred to or from her
        ("agent", "olga", {"anna"}, False),
        ("manager", "mark", {"anna"}, False),
        ("manager", "mark", {"mark"}, True),
        ("nobody", "x", {"x"}, False),
    ],
)
def test_who_may_hear_a_recording(role: str, agent: str, handled: set[str], may: bool) -> None:
    assert may_hear_recording(User(agent, role, "nonce"), handled) is may
