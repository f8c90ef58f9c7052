"""A scripted caller behind a FastAGI session, for the post-call survey's tests: what Asterisk
would answer to each command, with the caller's moves taken in order by every prompt, wait
and recording."""

from __future__ import annotations

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
