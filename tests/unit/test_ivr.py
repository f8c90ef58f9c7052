"""The IVR interpreter on the shipped info-line flow: events in, actions out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from core.ivr import (
    IVR,
    AgreeSurvey,
    CancelTimer,
    HangupCall,
    IVRAction,
    PlayPrompt,
    RequestCallback,
    RouteTo,
    SetLanguage,
    StartTimer,
    StopPlayback,
)
from core.routing import Caller

from dialplan.model import Flow

FLOW = Flow.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "dialplan" / "infoline.yaml").read_text())
)
KEY_CLIENT = Caller(client_id=7, client_type="key", language="en", assigned_manager="m1")
UNKNOWN = Caller()


def prompts(actions: list[IVRAction]) -> list[str]:
    return [a.prompt for a in actions if isinstance(a, PlayPrompt)]


def finish(ivr: IVR, actions: list[IVRAction]) -> list[IVRAction]:
    """Let the last prompt of ``actions`` play to its end."""
    plays = [a for a in actions if isinstance(a, PlayPrompt)]
    assert plays, actions
    return ivr.on_playback_finished(plays[-1].playback_id)


def timer(actions: list[IVRAction]) -> str:
    timers = [a for a in actions if isinstance(a, StartTimer)]
    assert timers, actions
    return timers[-1].timer_id


def test_known_caller_hears_notice_then_welcome_back_in_their_language() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    first = ivr.start()
    assert prompts(first) == ["recording_notice"]
    nxt = finish(ivr, first)
    assert SetLanguage("en") in nxt
    assert prompts(nxt) == ["welcome_back"]
    assert all(a.language == "en" for a in nxt if isinstance(a, PlayPrompt))
    assert prompts(finish(ivr, nxt)) == ["main_menu"]


def test_unknown_caller_is_offered_the_language_choice_and_keeps_default_on_timeout() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    choice = finish(ivr, ivr.start())
    assert prompts(choice) == ["choose_language"]
    wait = finish(ivr, choice)
    welcome = ivr.on_timer(timer(wait))
    assert prompts(welcome) == ["welcome"]
    assert ivr.language == "bs"


def test_unknown_caller_pressing_nine_switches_to_english() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    finish(ivr, ivr.start())
    actions = ivr.on_dtmf("9")
    assert SetLanguage("en") in actions
    assert any(isinstance(a, StopPlayback) for a in actions)
    assert [a.language for a in actions if isinstance(a, PlayPrompt)] == ["en"]


def test_every_prompt_can_be_skipped_and_the_key_counts_for_the_menu() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    ivr.start()
    actions = ivr.on_dtmf("3")  # during the recording notice
    assert actions[0] == StopPlayback("p1")
    assert RouteTo("complaint") in actions
    assert ivr.path == [
        "notice",
        "language",
        "who",
        "greeting_known",
        "main_menu",
        "main_menu:3",
        "complaint",
    ]
    assert ivr.done


@pytest.mark.parametrize(
    ("key", "intent"),
    [
        ("2", "my_loan"),
        ("3", "complaint"),
        ("4", "credit_application"),
        ("5", "urgent"),
        ("0", "operator"),
    ],
)
def test_menu_keys_lead_to_their_intent(key: str, intent: str) -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    menu = finish(ivr, finish(ivr, ivr.start()))
    finish(ivr, menu)
    assert ivr.on_dtmf(key)[-1] == RouteTo(intent)


def test_information_answers_without_an_agent_then_returns_to_the_menu() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    finish(ivr, finish(ivr, ivr.start()))
    info = ivr.on_dtmf("1")
    assert prompts(info) == ["information_products"]
    assert prompts(finish(ivr, info)) == ["main_menu"]


def test_key_six_agrees_to_the_survey_after_the_call_then_the_menu_again() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    finish(ivr, finish(ivr, ivr.start()))
    agreed = ivr.on_dtmf("6")
    assert AgreeSurvey("nps") in agreed
    assert prompts(agreed) == ["survey_agreed"]
    assert prompts(finish(ivr, agreed)) == ["main_menu"]
    assert ivr.on_dtmf("0")[-1] == RouteTo("operator")
    assert ivr.path[-5:] == [
        "main_menu:6",
        "survey_after_call",
        "main_menu",
        "main_menu:0",
        "operator",
    ]


def test_a_key_during_the_survey_confirmation_counts_for_the_menu() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    finish(ivr, finish(ivr, ivr.start()))
    ivr.on_dtmf("6")
    assert ivr.on_dtmf("2")[-1] == RouteTo("my_loan")


def test_invalid_keys_reprompt_then_go_to_an_operator() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    menu = finish(ivr, finish(ivr, ivr.start()))
    finish(ivr, menu)
    invalid = ivr.on_dtmf("8")
    assert prompts(invalid) == ["invalid_choice"]
    assert prompts(finish(ivr, invalid)) == ["main_menu"]  # then the menu again
    retry = ivr.on_dtmf("7")  # during the repeated menu: still a wrong key
    assert prompts(retry) == ["invalid_choice"]
    assert ivr.on_dtmf("#")[-1] == RouteTo("operator")
    assert ivr.path[-2:] == ["main_menu:invalid", "operator"]


def test_silence_reprompts_then_goes_to_an_operator() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    menu = finish(ivr, finish(ivr, ivr.start()))
    for _ in range(FLOW.nodes["main_menu"].retries):  # type: ignore[union-attr]
        again = ivr.on_timer(timer(finish(ivr, menu)))
        assert prompts(again) == ["main_menu"]
        menu = again
    assert ivr.on_timer(timer(finish(ivr, menu)))[-1] == RouteTo("operator")


def test_stale_timer_and_playback_events_are_ignored() -> None:
    ivr = IVR(FLOW, KEY_CLIENT)
    first = ivr.start()
    assert ivr.on_timer("t99") == []
    assert ivr.on_playback_finished("p99") == []
    finish(ivr, first)
    assert ivr.on_playback_finished(first[0].playback_id) == []  # type: ignore[union-attr]


def test_callback_confirmed_with_one_uses_the_callers_number() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    offer = ivr.goto("callback_request")
    assert prompts(offer) == ["callback_offer"]
    taken = ivr.on_dtmf("1")
    assert RequestCallback(None, "general") in taken
    assert prompts(taken) == ["callback_confirmed"]
    bye = finish(ivr, taken)
    assert prompts(bye) == ["goodbye"]
    assert finish(ivr, bye) == [HangupCall()]


def test_callback_on_another_number_keyed_and_ended_with_hash() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    ivr.goto("callback_request")
    for d in "061222333":
        ivr.on_dtmf(d)
    assert RequestCallback("061222333", "general") in ivr.on_dtmf("#")


def test_callback_number_keyed_without_hash_is_taken_after_a_pause() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    ivr.goto("callback_request")
    actions: list[IVRAction] = []
    for d in "0612":
        actions = ivr.on_dtmf(d)
    assert any(isinstance(a, CancelTimer) for a in actions) or timer(actions)
    assert RequestCallback("0612", "general") in ivr.on_timer(timer(actions))


def test_no_callback_without_consent() -> None:
    ivr = IVR(FLOW, UNKNOWN)
    offer = ivr.goto("callback_request")
    again = ivr.on_timer(timer(finish(ivr, offer)))
    assert prompts(again) == ["callback_offer"]
    bye = ivr.on_timer(timer(finish(ivr, again)))
    assert prompts(bye) == ["goodbye"]
    assert not any(isinstance(a, RequestCallback) for a in bye)
