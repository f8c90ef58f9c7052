"""The IVR's prompts as sound files, and the music on hold.

A prompt with an explicit ``media`` URI for a language is played from there; every other
prompt text is synthesised (espeak-ng, then sox to 8 kHz 16-bit mono PCM WAV, which Asterisk's
format_wav plays without transcoding trouble) into ``<out_dir>/<lang>/<file>.wav``, played as
``sound:centrala/<lang>/<file>`` (``core.media.sound_name``: a flow's prompt file is named after
its text too). A sidecar ``<file>.wav.sha256`` of the voice and the text makes rebuilds
instant: only changed texts are synthesised again.

Operator tooling (``centrala prompts build``, ``centrala pbx up``, ``centrala pbx media``) and
``install_prompts``, which `serve` runs in a thread when a flow is published or tried from a
phone, so new texts are heard at once: plain blocking code.
"""

from __future__ import annotations

import array
import hashlib
import math
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

from centrala.settings import Settings
from core.media import SOUND_PREFIX, PromptSource, sound_name
from core.surveys.model import Survey
from dialplan.model import Flow

SAMPLE_RATE = 8000
# Where Asterisk finds our media, relative to its root (asterisk.conf: astdatadir).
SOUNDS_DIR = "usr/share/asterisk/sounds/centrala"
MOH_FILE = "usr/share/asterisk/moh/centrala-hold.wav"
SPEED_WPM = 150

# The call centres' languages and their espeak-ng voices (`espeak-ng --voices`).
VOICES: dict[str, str] = {
    "bs": "bs",
    "hr": "hr",
    "sr": "sr",
    "en": "en",
    "ro": "ro",
    "cs": "cs",
    "hu": "hu",
    "tr": "tr",
    "de": "de",
}


class PromptError(Exception):
    """A prompt cannot be built; the message says why and what to do."""


def load_flow(path: Path) -> Flow:
    """A flow from its YAML (or JSON) file, parsed by ``dialplan.validate.load_flow``."""
    from dialplan.validate import FlowError
    from dialplan.validate import load_flow as parse_flow

    try:
        return parse_flow(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, FlowError) as exc:
        raise PromptError(f"cannot read the flow {path}: {exc}") from exc


def load_survey_file(path: Path) -> Survey:
    """A survey from its YAML (or JSON) file, checked by ``core.surveys.validate``."""
    from core.surveys.validate import SurveyError, check_survey

    try:
        return check_survey(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, SurveyError) as exc:
        raise PromptError(f"cannot read the survey {path}: {exc}") from exc


def voice_for(lang: str) -> str:
    try:
        return VOICES[lang]
    except KeyError:
        raise PromptError(
            f"no speech synthesis voice for language {lang!r} "
            f"(known: {', '.join(sorted(VOICES))}); give the prompt a recorded `media` instead"
        ) from None


def _digest(voice: str, text: str) -> str:
    return hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PromptError(
            f"{name} is not installed, needed to synthesise prompts: apt-get install -y {name}"
        )
    return path


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise PromptError(
            f"{Path(cmd[0]).name} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}"
        )


def _synthesise(voice: str, text: str, out: Path) -> None:
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    raw = out.with_name(f".{out.stem}.espeak.wav")
    tmp = out.with_name(f".{out.stem}.tmp.wav")
    try:
        # An argument list, never a shell; "--" so a text starting with "-" is not an option.
        _run([espeak, "-v", voice, "-s", str(SPEED_WPM), "-w", str(raw), "--", text])
        # 8 kHz 16-bit mono PCM, normalised to -3 dBFS: even, and loud enough on a phone.
        fmt = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
        _run([sox, str(raw), *fmt, str(tmp), "gain", "-n", "-3"])
        os.replace(tmp, out)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def build_prompts(
    source: PromptSource, out_dir: Path, *, built: list[Path] | None = None
) -> list[Path]:
    """Synthesise every prompt text without explicit media for its language into
    ``out_dir/<lang>/<file>.wav`` (``sound_name``); returns every such file (built now or
    cached before). Files synthesised by this call (not from the cache) go into `built`."""
    jobs: list[tuple[str, str, str, str]] = []
    for name, prompt in sorted(source.prompts.items()):
        for lang, text in sorted(prompt.text.items()):
            if lang in prompt.media:
                continue
            # Check every language before synthesising anything.
            jobs.append((sound_name(source, name, lang), lang, voice_for(lang), text))
    paths = []
    for name, lang, voice, text in jobs:
        out = out_dir / lang / f"{name}.wav"
        sidecar = out.with_name(out.name + ".sha256")
        digest = _digest(voice, text)
        paths.append(out)
        if out.is_file() and sidecar.is_file() and sidecar.read_text().strip() == digest:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        _synthesise(voice, text, out)
        sidecar.write_text(digest + "\n")
        if built is not None:
            built.append(out)
    return paths


def hold_music(path: Path, seconds: float = 30) -> None:
    """Write calm music on hold: a slow arpeggio of soft sine tones (each note fading in and
    out) over four chords, 8 kHz 16-bit mono, peak at -12 dBFS. Deterministic: the same
    arguments give the same bytes. Loops smoothly (it starts and ends quietly)."""
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    n = round(seconds * SAMPLE_RATE)
    buf = [0.0] * n
    # C major, A minor, F major, G major; notes in Hz, played up and down.
    chords = (
        (261.63, 329.63, 392.00, 523.25),
        (220.00, 261.63, 329.63, 440.00),
        (174.61, 220.00, 261.63, 349.23),
        (196.00, 246.94, 293.66, 392.00),
    )
    step = 0.6  # seconds between notes
    ring = 1.8  # how long each note sounds (they overlap, like a soft pad)
    ring_n = round(ring * SAMPLE_RATE)
    attack_n = round(0.08 * SAMPLE_RATE)
    pattern = (0, 1, 2, 3, 2, 1)
    note_index = 0
    start = 0.0
    while start < seconds:
        chord = chords[(note_index // len(pattern)) % len(chords)]
        freq = chord[pattern[note_index % len(pattern)]]
        first = round(start * SAMPLE_RATE)
        w = 2 * math.pi * freq / SAMPLE_RATE
        for i in range(min(ring_n, n - first)):
            if i < attack_n:
                env = 0.5 - 0.5 * math.cos(math.pi * i / attack_n)  # soft fade in
            else:
                env = math.exp(-3.0 * (i - attack_n) / ring_n)  # gentle decay
            if i > ring_n - attack_n:
                env *= 0.5 - 0.5 * math.cos(math.pi * (ring_n - i) / attack_n)  # fade out
            # A sine with a whisper of octave: warm rather than a bare test tone.
            buf[first + i] += env * (math.sin(w * i) + 0.15 * math.sin(2 * w * i))
        note_index += 1
        start = note_index * step
    # Fade the whole piece in and out over a second so the loop seam is soft.
    edge = min(SAMPLE_RATE, n // 2)
    for i in range(edge):
        g = i / edge
        buf[i] *= g
        buf[n - 1 - i] *= g
    peak = max(abs(x) for x in buf) or 1.0
    scale = 32767 * 10 ** (-12 / 20) / peak
    samples = array.array("h", (round(x * scale) for x in buf))
    if sys.byteorder != "little":
        samples.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    os.replace(tmp, path)


def build_media(settings: Settings) -> None:
    """Synthesise the prompts of the flow and the surveys into data_dir/sounds (cached)."""
    sounds = settings.data_dir / "sounds"
    build_prompts(load_flow(settings.flow_file), sounds)
    for survey_file in settings.survey_files:
        build_prompts(load_survey_file(survey_file), sounds)


def install_media(settings: Settings, root: Path) -> None:
    """The synthesised prompts into ``root``'s sounds/centrala/<lang>/ and our music on hold
    into the default MOH class (musiconhold.conf), ``root`` being Asterisk's ``/``: the
    chroot for `pbx up`, the Asterisk image's tree for `pbx media` (its Dockerfile)."""
    install_sounds(settings, root)
    # Never silence on hold: the default class plays this (its directory is otherwise empty).
    # Under /usr/share, not /var/lib: the image's copy is not hidden by a volume.
    hold_music(root / MOH_FILE)


def install_prompts(source: PromptSource, cache_dir: Path, target: Path) -> list[Path]:
    """Synthesise ``source``'s prompt texts (cached in ``cache_dir``) and put the files
    ``target`` (Asterisk's sounds/centrala) lacks there, each whole or not at all (written
    beside, then renamed): a call playing the file never reads half of one. Files already
    there are left alone (a file's name says its text). The files put there now."""
    if not target.is_dir():
        raise PromptError(f"{target} is not a directory: is the PBX's sound directory shared?")
    installed = []
    for path in build_prompts(source, cache_dir):
        lang_dir = target / path.parent.name
        final = lang_dir / path.name
        if final.is_file():
            continue
        lang_dir.mkdir(mode=0o755, exist_ok=True)
        tmp = lang_dir / f".{path.name}.tmp"
        shutil.copyfile(path, tmp)
        os.chmod(tmp, 0o644)  # the asterisk user reads them
        os.replace(tmp, final)
        installed.append(final)
    return installed


MAX_RECORDING_SECONDS = 120.0
MAX_RECORDING_BYTES = 4_000_000


class BadRecording(PromptError):
    """An uploaded prompt recording that cannot be used; the message says why."""


def install_recording(data: bytes, prompt: str, lang: str, cache_dir: Path, target: Path) -> str:
    """An uploaded recording of ``prompt`` in ``lang`` (WAV, MP3, OGG, FLAC: whatever sox
    reads), checked (audio, at most two minutes), converted to what Asterisk plays (8 kHz
    16-bit mono, -3 dBFS) and put beside the synthesised prompts under a name of its content;
    the media URI that plays it. Raises BadRecording (nothing stored) or PromptError."""
    if not data:
        raise BadRecording("the file is empty")
    if len(data) > MAX_RECORDING_BYTES:
        raise BadRecording(f"the file is over {MAX_RECORDING_BYTES // 1_000_000} MB")
    if not target.is_dir():
        raise PromptError(f"{target} is not a directory: is the PBX's sound directory shared?")
    sox = _tool("sox")
    name = f"upload-{prompt}-{hashlib.sha256(data).hexdigest()[:8]}"
    work = cache_dir / "uploads"
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f".{name}.upload"
    out = work / f".{name}.wav"
    try:
        raw.write_bytes(data)
        # sox reads the format from the file's own header ("-t" is not given: a name proves
        # nothing); what it cannot read is not audio.
        probe = subprocess.run(
            [sox, "--i", "-D", str(raw)], capture_output=True, text=True, timeout=30, check=False
        )
        try:
            seconds = float(probe.stdout.strip())
        except ValueError:
            raise BadRecording("not a sound file sox can read (WAV, MP3, OGG, FLAC)") from None
        if probe.returncode != 0:
            raise BadRecording("not a sound file sox can read (WAV, MP3, OGG, FLAC)")
        if seconds > MAX_RECORDING_SECONDS:
            raise BadRecording(
                f"{seconds:.0f} s long: a prompt is at most {MAX_RECORDING_SECONDS:.0f} s"
            )
        if seconds <= 0.1:
            raise BadRecording("no sound in it")
        fmt = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer"]
        _run([sox, str(raw), *fmt, str(out), "gain", "-n", "-3"])
        lang_dir = target / lang
        lang_dir.mkdir(mode=0o755, exist_ok=True)
        tmp = lang_dir / f".{name}.wav.tmp"
        shutil.copyfile(out, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, lang_dir / f"{name}.wav")
        # Kept with the synthesised ones: `pbx up` installs this cache into the PBX again.
        (cache_dir / lang).mkdir(parents=True, exist_ok=True)
        os.replace(out, cache_dir / lang / f"{name}.wav")
    finally:
        raw.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return f"sound:{SOUND_PREFIX}/{lang}/{name}"


def install_sounds(settings: Settings, root: Path) -> None:
    """Every synthesised prompt in data_dir/sounds into ``root``'s sounds/centrala/."""
    sounds = settings.data_dir / "sounds"
    target = root / SOUNDS_DIR
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for lang_dir in sorted(sounds.iterdir()) if sounds.is_dir() else []:
        files = sorted(lang_dir.glob("*.wav")) if lang_dir.is_dir() else []
        if not files:
            continue
        (target / lang_dir.name).mkdir()
        for wav in files:
            shutil.copyfile(wav, target / lang_dir.name / wav.name)
    # Readable by the asterisk user (it only reads them).
    for dirpath, _dirs, names in os.walk(target):
        os.chmod(dirpath, 0o755)
        for name in names:
            os.chmod(os.path.join(dirpath, name), 0o644)
