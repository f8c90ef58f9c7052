"""A scripted caller behind a FastAGI session, for the post-call survey's tests: what Asterisk
would answer to each command, with the caller's moves taken in order by every prompt, wait
and recording. And the Asterisk side of a real FastAGI connection (``asterisk_header``,
``AsteriskClient``) for the tests that attack the server over TCP."""

from __future__ import annotations

import asyncio
import contextlib

from agi.protocol import AGIHangup, AGIReply, AGIRequest, parse_reply

SAMPLE_RATE = 8000


class FakeSession:
    """Moves, one per STREAM FILE / WAIT FOR DIGIT / RECORD FILE:

    * ``"-"``: nothing (the prompt plays to its end, the wait times out, the recording hears
      only silence);
    * a key (``"1"``, ``"#"``): pressed during it;
    * ``"hangup"``: the caller hangs up (this and every later command raise AGIHangup);
    * ``"#2.5"``: (a recording) 2.5 s said, then "#"; ``"~2.5"``: 2.5 s said, then hung up.
    """

    def __init__(self, *moves: str, args: tuple[str, ...] = ()) -> None:
        self.moves = list(moves)
        self.sent: list[tuple[str, ...]] = []
        self.hung_up = False
        self.request = AGIRequest(
            script="survey",
            query={},
            env={"channel": "Local/0800100200@from-trunk-00000001;2", "uniqueid": "chan-1"},
            args=list(args),
        )

    async def command(self, *words: str, timeout: float | None = None) -> AGIReply:
        self.sent.append(words)
        if self.hung_up:
            raise AGIHangup("channel hung up")
        if words[0] not in ("STREAM", "WAIT", "RECORD"):
            return parse_reply("200 result=1")
        assert self.moves, f"the caller has no move left for {words}"
        move = self.moves.pop(0)
        if move == "hangup":
            self.hung_up = True
            raise AGIHangup("511 Command Not Permitted on a dead channel")
        if words[0] == "RECORD":
            self.hung_up = move.startswith("~")  # Asterisk still answers, then HANGUP
            return parse_reply(_record_reply(move))
        if move == "-":
            return parse_reply(
                "200 result=0 endpos=8000" if words[0] == "STREAM" else "200 result=0"
            )
        return parse_reply(f"200 result={ord(move)}")

    @property
    def commands(self) -> list[str]:
        """The commands sent, as words: ``STREAM FILE centrala/en/... 0123456789*#``."""
        return [" ".join(w for w in words if w) for words in self.sent]


def _record_reply(move: str) -> str:
    if move == "-":  # silence: Asterisk stops after s= seconds and keeps one of them
        return f"200 result=0 (timeout) endpos={SAMPLE_RATE}"
    samples = round(float(move[1:]) * SAMPLE_RATE)
    if move.startswith("#"):
        return f"200 result=35 (dtmf) endpos={samples}"
    if move.startswith("~"):
        return f"200 result=-1 (hangup) endpos={samples}"
    raise AssertionError(f"not a recording move: {move!r}")


# ---- the Asterisk side of a FastAGI connection, over TCP -------------------------------------

SECRET = "test-agi-secret-0123456789"


def asterisk_header(
    script: str = "infoline",
    *,
    args: tuple[str, ...] = (),
    uniqueid: str = "1764500000.1",
    channel: str = "Local/0800100200@infoline-agi-00000001;2",
    callerid: str = "38761555444",
    calleridname: str = "Ana",
    extension: str = "0800100200",
    context: str = "infoline-agi",
) -> bytes:
    """The header exactly as Asterisk 22 writes it (res_agi.c: launch_netscript, then
    setup_env, in that order), the caller's fields unescaped as Asterisk leaves them."""
    lines = [
        "agi_network: yes",
        f"agi_network_script: {script}",
        f"agi_request: agi://127.0.0.1:4573/{script}",
        f"agi_channel: {channel}",
        "agi_language: en",
        "agi_type: Local",
        f"agi_uniqueid: {uniqueid}",
        "agi_version: 22.5.2",
        f"agi_callerid: {callerid}",
        f"agi_calleridname: {calleridname}",
        "agi_callingpres: 0",
        "agi_callingani2: 0",
        "agi_callington: 0",
        "agi_callingtns: 0",
        "agi_dnid: unknown",
        "agi_rdnis: unknown",
        f"agi_context: {context}",
        f"agi_extension: {extension}",
        "agi_priority: 2",
        "agi_enhanced: 0.0",
        "agi_accountcode: ",
        "agi_threadid: 140000000000000",
        *(f"agi_arg_{i}: {arg}" for i, arg in enumerate(args, start=1)),
    ]
    return ("\n".join(lines) + "\n\n").encode()


class AsteriskClient:
    """One FastAGI connection as Asterisk would open it; ``source`` picks the local address
    (any 127.x.y.z reaches a server on 127.0.0.1, so one host can play several peers)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, port: int, header: bytes | None = None, *, source: str = "127.0.0.1"
    ) -> AsteriskClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        client = cls(reader, writer)
        if header is not None:
            writer.write(header)
            await writer.drain()
        return client

    async def command(self, within: float = 5.0) -> str | None:
        """The next command the server sends, None when it closed the connection."""
        line = await asyncio.wait_for(self.reader.readline(), within)
        return line.decode().rstrip("\n") if line.endswith(b"\n") else None

    async def reply(self, line: str) -> None:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()

    async def closed(self, within: float = 5.0) -> bytes:
        """Wait until the server closes the connection; what it still sent."""
        data = b""
        with contextlib.suppress(ConnectionResetError):
            async with asyncio.timeout(within):
                while chunk := await self.reader.read(65536):
                    data += chunk
        return data

    def close(self) -> None:
        self.writer.close()
