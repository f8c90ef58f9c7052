"""Real phone lines on loopback: a second Asterisk (the very chroot of `centrala pbx up`, its
own root, config, ports and addresses) is the carrier on 127.0.0.2 and the agents' phones on
127.0.0.3; the Centrala PBX (127.0.0.1:5060) gets a trunk to it from its settings, as an
operator would give one. Every call here is SIP and RTP between two Asterisks; the test drives
the far one through its ARI (app ``far-test``) as a caller, a phone and a called client would
act: dial, press keys, answer, play a tone, listen (record)."""

from __future__ import annotations

import array
import contextlib
import math
import os
import shutil
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ari_app.ari import ARIClient, ARIError, ARINotFound, Event
from centrala.settings import REPO_ROOT, Settings
from tests.integration.conftest import PBX, _centrala, callers, no_leftovers, pbx
from tests.support import copy_pbx_root, wait_until

__all__ = ["callers", "far", "no_leftovers", "pbx"]

FAR_APP = "far-test"
FAR_ARI = "http://127.0.0.1:18088/ari"
FAR_CONFIG = REPO_ROOT / "tests" / "asterisk-far"
CARRIER = "127.0.0.2"
PHONES = "127.0.0.3"


def far_env(root: Path, config_dir: Path) -> dict[str, str]:
    """`centrala` pointed at the far Asterisk: its own root, config and ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env.update(
        CENTRALA_PBX_ROOT=str(root),
        CENTRALA_PBX_CONFIG_DIR=str(config_dir),
        CENTRALA_DATA_DIR=str(root / "data"),  # its prompts, synthesised once
        CENTRALA_ARI_URL=FAR_ARI,
        CENTRALA_AMI_PORT="15038",
        CENTRALA_SIP_BIND=f"{CARRIER}:5060",
        CENTRALA_AGI_SECRET="far-side-has-no-fastagi",
    )
    return env


def goertzel(samples: array.array[int], rate: int, freq: float) -> float:
    """The power of one frequency in the samples (normalised by their length)."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / max(len(samples), 1) ** 2


def read_wav(path: Path) -> tuple[array.array[int], int]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        samples = array.array("h", w.readframes(w.getnframes()))
        return samples, w.getframerate()


@dataclass
class Far:
    """The far Asterisk, through its ARI: calls it places or receives, by channel id."""

    root: Path
    env: dict[str, str]
    ari: ARIClient
    events: dict[str, list[Event]] = field(default_factory=dict)
    incoming: list[Event] = field(default_factory=list)  # StasisStart of calls from Centrala
    placed: set[str] = field(default_factory=set)

    async def on_event(self, event: Event) -> None:
        channel_id = str((event.get("channel") or {}).get("id", ""))
        for key in ("recording", "playback"):
            if key in event:
                channel_id = str(event[key].get("target_uri", "")).removeprefix("channel:")
        if not channel_id:
            return
        self.events.setdefault(channel_id, []).append(event)
        if event["type"] == "StasisStart" and channel_id not in self.placed:
            self.incoming.append(event)

    def cli(self, command: str) -> str:
        return _centrala("pbx", "cli", command, env=self.env)

    async def call(self, number: str, caller_id: str, via: str = "carrier-out") -> str:
        """The carrier sends a call to ``number`` over the trunk to Centrala (``via``
        carrier-tls-out: over TLS, with SRTP)."""
        channel_id = f"far-{uuid.uuid4().hex[:12]}"
        self.placed.add(channel_id)
        await self.ari.originate(
            f"PJSIP/{number}@{via}", channel_id=channel_id, app=FAR_APP, caller_id=caller_id
        )
        return channel_id

    async def wait_event(
        self, channel_id: str, kind: str, timeout: float = 20, **where: Any
    ) -> Event:
        def found() -> Event | None:
            for event in self.events.get(channel_id, []):
                if event["type"] == kind and all(
                    (event.get("channel") or {}).get(k) == v for k, v in where.items()
                ):
                    return event
            return None

        return await wait_until(found, timeout=timeout, message=f"{kind} on far {channel_id}")

    async def wait_incoming(self, exten: str, timeout: float = 30) -> Event:
        """A call from Centrala to ``exten`` (a number through the trunk, or 7<agent> for
        an agent's phone), in the far-test app."""

        def found() -> Event | None:
            return next((e for e in self.incoming if e.get("args") == [exten]), None)

        return await wait_until(found, timeout=timeout, message=f"a call from Centrala to {exten}")

    async def listen(self, channel_id: str, seconds: int) -> tuple[array.array[int], int]:
        """What the far end of ``channel_id`` hears for ``seconds`` (recorded on the far
        Asterisk, from the RTP that arrives)."""
        name = f"listen-{uuid.uuid4().hex[:10]}"
        await self.ari.record(
            channel_id,
            name,
            max_seconds=seconds,
            silence_seconds=0,
            beep=False,
            terminate_on="none",
        )

        def finished() -> bool:
            return any(
                e["type"] == "RecordingFinished" and e["recording"]["name"] == name
                for e in self.events.get(channel_id, [])
            )

        await wait_until(finished, timeout=seconds + 15, message=f"recording {name}")
        return read_wav(self.root / "rootfs/var/spool/asterisk/recording" / f"{name}.wav")

    async def hang_up_all(self) -> None:
        for channel in await self.ari.channels():
            with contextlib.suppress(ARINotFound):
                await self.ari.hangup(channel["id"])


@dataclass(frozen=True)
class TLSFiles:
    """A test CA and a certificate from it for each side, made at test time."""

    ca: Path
    centrala_cert: Path
    centrala_key: Path
    carrier_cert: Path
    carrier_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_tls_files(out: Path) -> TLSFiles:
    """A CA, and certificates for Centrala (127.0.0.1) and the far side (the carrier's and the
    phones' addresses) signed by it, each naming its addresses (subjectAltName: what TLS
    verification checks)."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=Centrala test CA", "-keyout", out / "ca-key.pem", "-out", out / "ca.pem",
    )  # fmt: skip
    for who, addresses in (("centrala", ["127.0.0.1"]), ("carrier", [CARRIER, PHONES])):
        address = addresses[0]
        key, csr, ext = out / f"{who}-key.pem", out / f"{who}.csr", out / f"{who}.ext"
        ext.write_text("subjectAltName = " + ",".join(f"IP:{a}" for a in addresses) + "\n")
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={address}",
            "-keyout", key, "-out", csr,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", csr, "-CA", out / "ca.pem", "-CAkey", out / "ca-key.pem",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", out / f"{who}-cert.pem",
        )  # fmt: skip
    return TLSFiles(
        out / "ca.pem",
        out / "centrala-cert.pem",
        out / "centrala-key.pem",
        out / "carrier-cert.pem",
        out / "carrier-key.pem",
    )


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def far_config(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Path:
    """The shipped configuration with tests/asterisk-far over it (its own SIP, dialplan, RTP
    range, the carrier's TLS certificate); the phones' registrations are added by the tests
    (far_phones.conf)."""
    config = tmp_path_factory.mktemp("far-config") / "asterisk"
    shutil.copytree(Settings().pbx_config_dir, config)
    for conf in FAR_CONFIG.glob("*.conf"):
        shutil.copy2(conf, config / conf.name)
    shutil.copy2(tls_files.carrier_cert, config / "far-tls-cert.pem")
    shutil.copy2(tls_files.carrier_key, config / "far-tls-key.pem")
    shutil.copy2(tls_files.ca, config / "far-tls-ca.pem")
    return config


@pytest.fixture(scope="session")
async def far(pbx: PBX, far_config: Path) -> AsyncIterator[Far]:
    ours = pbx.settings.pbx_root
    root = Path(os.environ.get("CENTRALA_TEST_FAR_PBX_ROOT", f"{ours}-far"))
    copy_pbx_root(ours, root)  # the far Asterisk's chroot, made once
    env = far_env(root, far_config)
    _centrala("pbx", "up", env=env)
    ari = ARIClient(FAR_ARI, pbx.settings.ari_user, pbx.settings.ari_password, [FAR_APP])
    far = Far(root, env, ari)
    ari.on_event(far.on_event)
    try:
        await ari.start()
        await ari.wait_connected(15)
        yield far
    finally:
        with contextlib.suppress(ARIError, OSError):
            await far.hang_up_all()
        await ari.stop()
        _centrala("pbx", "down", env=env)


@pytest.fixture(autouse=True)
async def far_leaves_nothing(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """As no_leftovers for the Centrala PBX: no channel left on the far side either. Each
    test starts with no calls from Centrala seen (an earlier test's call to the same number
    or phone is not this test's)."""
    if "far" in request.fixturenames:
        request.getfixturevalue("far").incoming.clear()
    yield
    if "far" not in request.fixturenames:
        return
    far: Far = request.getfixturevalue("far")

    async def none_left() -> bool:
        return not await far.ari.channels()

    try:
        await wait_until(none_left, timeout=15, message="no channels left on the far side")
    finally:
        await far.hang_up_all()


@pytest.fixture(scope="session")
def trunk_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The operator's config file giving the Centrala PBX its trunk to the far side."""
    path = tmp_path_factory.mktemp("lines") / "centrala.toml"
    path.write_text(TRUNK_TOML)
    yield path


# What README's "Connecting a carrier and phones" shows, with the carrier's address on loopback.
TRUNK_TOML = f"""\
outbound_trunk = "carrier"

[[trunks]]
name = "carrier"
server = "{CARRIER}:5060"
addresses = ["{CARRIER}"]
codecs = ["alaw"]
caller_id = "033555000"
numbers = {{ "0800100200" = "infoline", "+38733555000" = "infoline" }}
"""
