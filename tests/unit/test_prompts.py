"""Prompt media URIs, synthesised prompts (real espeak-ng and sox) and the music on hold."""

from __future__ import annotations

import array
import math
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from centrala.prompts import (
    MAX_RECORDING_BYTES,
    MAX_RECORDING_SECONDS,
    BadRecording,
    PromptError,
    build_prompts,
    hold_music,
    install_prompts,
    install_recording,
    load_flow,
    voice_for,
)
from centrala.settings import Settings
from core.media import prompt_media, prompt_of, text_tag
from dialplan.model import Flow


def _flow(prompts: dict[str, Any], languages: list[str] | None = None) -> Flow:
    return Flow.model_validate(
        {
            "name": "tiny",
            "default_language": "bs",
            "languages": languages or ["bs", "en"],
            "start": "hello",
            "nodes": {"hello": {"type": "hangup", "prompt": "hello"}},
            "prompts": prompts,
        }
    )


TINY = {
    "hello": {"text": {"bs": "Dobar dan.", "en": "Good morning."}},
    "bye": {"text": {"bs": "Doviđenja.", "en": "Goodbye."}},
}


def _file(lang: str, name: str, text: str) -> str:
    """A flow prompt's file: its name and the tag of its text (core.media.sound_name)."""
    return f"{name}-{text_tag(lang, text)}.wav"


def _read(path: Path) -> tuple[wave._wave_params, array.array[int]]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        samples = array.array("h", w.readframes(params.nframes))
    if sys.byteorder != "little":
        samples.byteswap()
    return params, samples


def _rms_dbfs(samples: array.array[int]) -> float:
    rms = math.sqrt(sum(s * s for s in samples) / len(samples))
    return 20 * math.log10(max(rms, 1e-9) / 32768)


def _assert_telephone_wav(path: Path, min_seconds: float = 0.3) -> array.array[int]:
    params, samples = _read(path)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2), params
    assert params.nframes / params.framerate > min_seconds
    assert _rms_dbfs(samples) > -40, "silent"
    return samples


# ---- prompt_media -------------------------------------------------------------------------


def test_prompt_media_prefers_explicit_media_per_language() -> None:
    flow = _flow(
        {"hello": {"text": {"bs": "Dobar dan.", "en": "Hello."}, "media": {"en": "sound:hello"}}}
    )
    assert prompt_media(flow, "hello", "en") == "sound:hello"
    tag = text_tag("bs", "Dobar dan.")
    assert prompt_media(flow, "hello", "bs") == f"sound:centrala/bs/hello-{tag}"
    assert prompt_media(flow, "unknown", "de") == "sound:centrala/de/unknown"


def test_a_flow_prompts_file_is_named_after_its_text() -> None:
    before = _flow({"hello": {"text": {"bs": "Dobar dan."}}})
    after = _flow({"hello": {"text": {"bs": "Dobro jutro."}}})
    old, new = prompt_media(before, "hello", "bs"), prompt_media(after, "hello", "bs")
    assert old != new  # a call on the old version keeps hearing the old file
    assert prompt_of(old) == prompt_of(new) == "sound:centrala/bs/hello"
    assert prompt_of("sound:centrala/bs/main-menu") == "sound:centrala/bs/main-menu"


# ---- build_prompts ------------------------------------------------------------------------


def test_build_prompts_makes_telephone_wavs(tmp_path: Path) -> None:
    built: list[Path] = []
    paths = build_prompts(_flow(TINY), tmp_path, built=built)
    expected = {
        tmp_path / lang / _file(lang, name, prompt["text"][lang])
        for lang in ("bs", "en")
        for name, prompt in TINY.items()
    }
    assert set(paths) == expected
    assert set(built) == expected
    for path in paths:
        _assert_telephone_wav(path)
        assert path.with_name(path.name + ".sha256").is_file()
    # No temporary files left behind.
    bye, hello = _file("bs", "bye", "Doviđenja."), _file("bs", "hello", "Dobar dan.")
    assert sorted(p.name for p in (tmp_path / "bs").iterdir()) == [
        bye,
        f"{bye}.sha256",
        hello,
        f"{hello}.sha256",
    ]


def test_rebuild_uses_the_cache_and_redoes_only_changed_texts(tmp_path: Path) -> None:
    paths = build_prompts(_flow(TINY), tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in paths}

    built: list[Path] = []
    assert build_prompts(_flow(TINY), tmp_path, built=built) == paths
    assert built == []
    assert {p: p.stat().st_mtime_ns for p in paths} == mtimes

    changed = {**TINY, "bye": {"text": {"bs": "Doviđenja.", "en": "Goodbye and thank you."}}}
    old = tmp_path / "en" / _file("en", "bye", "Goodbye.")
    before = old.read_bytes()
    built = []
    build_prompts(_flow(changed), tmp_path, built=built)
    assert built == [tmp_path / "en" / _file("en", "bye", "Goodbye and thank you.")]
    assert old.read_bytes() == before  # a call on the old version still plays the old text
    for path in paths:
        assert path.stat().st_mtime_ns == mtimes[path], path


def test_explicit_media_is_not_synthesised(tmp_path: Path) -> None:
    flow = _flow({"hello": {"text": {"bs": "Dobar dan.", "en": "Hi."}, "media": {"en": "x"}}})
    assert build_prompts(flow, tmp_path) == [tmp_path / "bs" / _file("bs", "hello", "Dobar dan.")]
    assert not (tmp_path / "en").exists()


def test_unknown_language_is_an_error_naming_it(tmp_path: Path) -> None:
    flow = _flow({"hello": {"text": {"bs": "Dobar dan.", "xx": "?"}}}, ["bs", "xx"])
    with pytest.raises(PromptError, match="'xx'"):
        build_prompts(flow, tmp_path)
    assert not (tmp_path / "bs").exists(), "checked before synthesising anything"


def test_shell_metacharacters_and_leading_dash_are_just_spoken(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    canary.write_text("still here")
    text = f'-x --help "; rm -rf {canary} # $(touch {tmp_path}/pwned) `id` | & > out'
    (path,) = build_prompts(_flow({"hello": {"text": {"en": text}}}, ["en"]), tmp_path)
    _assert_telephone_wav(path)
    assert canary.read_text() == "still here"
    assert not (tmp_path / "pwned").exists()
    assert not (Path.cwd() / "out").exists()


def test_missing_tools_are_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PromptError, match="espeak-ng is not installed"):
        build_prompts(_flow(TINY), tmp_path)


def test_the_default_flow_loads_and_every_language_has_a_voice() -> None:
    flow = load_flow(Settings().flow_file)
    for name, prompt in flow.prompts.items():
        for lang in prompt.text:
            assert voice_for(lang)
            tag = text_tag(lang, prompt.text[lang])
            assert prompt_media(flow, name, lang) == f"sound:centrala/{lang}/{name}-{tag}"
    for lang in ("bs", "hr", "sr", "en", "ro", "cs", "hu", "tr", "de"):
        assert voice_for(lang)


def test_load_flow_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(PromptError, match=r"bad\.yaml"):
        load_flow(bad)


# ---- hold_music ---------------------------------------------------------------------------


def test_hold_music_is_calm_audible_and_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    hold_music(a, seconds=12)
    hold_music(b, seconds=12)
    assert a.read_bytes() == b.read_bytes()
    params, samples = _read(a)
    assert (params.framerate, params.nchannels, params.sampwidth) == (8000, 1, 2)
    assert abs(params.nframes / 8000 - 12) < 0.01
    assert _rms_dbfs(samples) > -30, "no silence on hold"
    peak = max(abs(s) for s in samples)
    assert -14 < 20 * math.log10(peak / 32768) < -10
    # Never silent for long: every second has sound (the first and last fade, but not to 0).
    for second in range(1, 11):
        chunk = samples[second * 8000 : (second + 1) * 8000]
        assert _rms_dbfs(chunk) > -40, second


def test_hold_music_default_length(tmp_path: Path) -> None:
    hold_music(tmp_path / "moh.wav")
    params, _ = _read(tmp_path / "moh.wav")
    assert abs(params.nframes / params.framerate - 30) < 0.01


def test_install_puts_only_the_missing_files_where_asterisk_plays_them(tmp_path: Path) -> None:
    target = tmp_path / "sounds-centrala"
    with pytest.raises(PromptError, match="not a directory"):
        install_prompts(_flow(TINY), tmp_path / "cache", target)
    target.mkdir()
    installed = install_prompts(_flow(TINY), tmp_path / "cache", target)
    assert installed and all(p.is_file() and p.stat().st_mode & 0o777 == 0o644 for p in installed)
    assert install_prompts(_flow(TINY), tmp_path / "cache", target) == []  # all there already
    assert not list(target.rglob(".*.tmp"))


def test_an_uploaded_recording_is_checked_converted_and_installed(tmp_path: Path) -> None:
    target, cache = tmp_path / "sounds", tmp_path / "cache"
    target.mkdir()
    hold_music(tmp_path / "short.wav", seconds=3)
    media = install_recording((tmp_path / "short.wav").read_bytes(), "welcome", "bs", cache, target)
    assert media.startswith("sound:centrala/bs/upload-welcome-")
    installed = target / "bs" / f"{media.rsplit('/', 1)[-1]}.wav"
    _assert_telephone_wav(installed)
    assert (cache / "bs" / installed.name).is_file()  # `pbx up` installs it again

    hold_music(tmp_path / "long.wav", seconds=MAX_RECORDING_SECONDS + 5)
    bad = [
        (b"", "empty"),
        (b"Dobar dan, ovo nije zvuk.", "not a sound file"),
        ((tmp_path / "long.wav").read_bytes(), "at most 120 s"),
        (b"x" * (MAX_RECORDING_BYTES + 1), "over 4 MB"),
    ]
    for data, why in bad:
        with pytest.raises(BadRecording, match=why):
            install_recording(data, "welcome", "bs", cache, target)
    assert sorted(p.name for p in target.rglob("*")) == ["bs", installed.name]  # nothing more
