"""The FastAGI wire format (Asterisk ``res_agi.c``), apart from the server that uses it:
the request header (``read_header``, ``parse_request``), the quoting of a command line
(``format_command``: no CR/LF/NUL, at most 2046 bytes and 127 words, or Asterisk would run
a second command or drop words), and the replies (``read_line``, ``parse_reply``: ``200
result=...``, ``510``, ``511``, ``520`` usage blocks). The errors every AGI caller sees are
here too. See ``agi.server`` for the protocol summary and the hang-up policy.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

# res_agi.c reads commands with fgets() into char buf[AGI_BUF_LEN=2048]: a longer line is
# silently split and the tail executed as a *second* command, so we refuse to send one.
MAX_COMMAND_BYTES = 2046  # + "\n" + NUL == 2048
# parse_args() keeps at most MAX_ARGS - 1 == 127 words and silently drops the rest.
MAX_COMMAND_WORDS = 127

MAX_REPLY_LINE = 1 << 20  # GET VARIABLE values can be long; bound memory anyway
MAX_USAGE_LINES = 500

COMMAND_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_NEEDS_QUOTES = frozenset(' \t"\\')
_FORBIDDEN = frozenset("\r\n\x00")
_REPLY_LINE = re.compile(r"(\d{3})([ -])(.*)\Z", re.DOTALL)
# Greedy data group: a value may itself contain parentheses; backtracking leaves only
# well-formed key=value tokens after the last ")".
_RESULT = re.compile(r"result=(\S*)(?:\s+\((.*)\))?((?:\s+[^\s=]+=\S*)*)\s*\Z", re.DOTALL)


# --------------------------------------------------------------------------- errors


class AGIError(Exception):
    """Base class of all AGI errors."""


class AGIProtocolError(AGIError):
    """The peer violated the AGI protocol (bad header, unparsable reply, limits)."""


class AGIArgumentError(AGIError, ValueError):
    """A command cannot be sent safely (CR/LF/NUL in a word, too long, bad name)."""


class AGICommandError(AGIError):
    """Asterisk rejected the command (510 unknown command, or another non-200 code)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class AGIUsageError(AGICommandError):
    """520: wrong command syntax; ``usage`` holds Asterisk's usage text, if any."""

    def __init__(self, code: int, text: str, usage: str = "") -> None:
        super().__init__(code, text)
        self.usage = usage


class AGIHangup(AGIError):
    """The channel hung up (511, HANGUP seen, or the connection closed)."""


class AGITimeout(AGIError):
    """No reply within the command timeout; the connection has been closed."""


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class AGIRequest:
    """The FastAGI request header, parsed."""

    script: str
    query: dict[str, str]
    env: dict[str, str]
    args: list[str]

    @property
    def channel(self) -> str:
        return self.env.get("channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("uniqueid", "")

    @property
    def callerid(self) -> str:
        """Raw ``agi_callerid``; Asterisk sends ``unknown`` when there is none."""
        return self.env.get("callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("calleridname", "")

    @property
    def dnid(self) -> str:
        return self.env.get("dnid", "")

    @property
    def extension(self) -> str:
        return self.env.get("extension", "")

    @property
    def context(self) -> str:
        return self.env.get("context", "")


# Asterisk writes the caller's fields unescaped (res_agi.c setup_env), so a caller name or
# number with a line feed adds header lines of the caller's choosing. Each of those fields is
# always followed by the same key, so the lines between it and that key are the rest of the
# value, not header lines.
CALLER_FIELD_NEXT: dict[str, str] = {
    "callerid": "calleridname",
    "calleridname": "callingpres",
    "dnid": "rdnis",
    "rdnis": "context",
}

# The keys that pick the handler, name the call or carry its arguments (and the secret): a
# second one of these means the header was forged, and the request is refused outright.
# Other repeats are harmless; the first one counts, so a later line never overrides it.
SECURITY_KEYS = frozenset(
    {
        "network_script",
        "request",
        "channel",
        "uniqueid",
        "callerid",
        "calleridname",
        "dnid",
        "rdnis",
        "context",
        "extension",
        "accountcode",
    }
)


class AGIDuplicateKey(AGIProtocolError):
    """The header repeats a key that decides what runs or for which call."""


def _split_line(line: str) -> tuple[str, str]:
    key, sep, value = line.partition(":")
    if not sep:
        raise AGIProtocolError(f"header line without colon: {line[:80]!r}")
    if not key.startswith("agi_") or len(key) == 4 or not key.isprintable() or " " in key:
        raise AGIProtocolError(f"not an agi_* header: {key[:80]!r}")
    if "\x00" in value:
        raise AGIProtocolError(f"NUL byte in header {key!r}")
    # Asterisk writes "agi_x: value"; the value may be empty ("agi_accountcode: ").
    return key[4:], value[1:] if value.startswith(" ") else value


def _fold_caller_fields(lines: Sequence[str]) -> list[str]:
    """The header lines with every injected line folded back into the caller's field it
    came from (joined with a line feed), when the key that follows that field is there."""
    folded: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        key = line.partition(":")[0].removeprefix("agi_")
        follower = CALLER_FIELD_NEXT.get(key) if line.startswith("agi_") else None
        if follower is not None:
            ends = next(
                (at for at in range(index, len(lines)) if lines[at].startswith(f"agi_{follower}:")),
                None,
            )
            if ends is not None:
                line = "\n".join([line, *lines[index:ends]])
                index = ends
        folded.append(line)
    return folded


def parse_request(lines: Sequence[str]) -> AGIRequest:
    """Parse header lines (without the terminating empty line) into an AGIRequest.

    Every line must be ``agi_<name>: <value>``; anything else raises AGIProtocolError. A key
    is never overridden by a later line: a repeated security-relevant key (see
    ``SECURITY_KEYS``, and every ``agi_arg_N``) raises AGIDuplicateKey, any other keeps its
    first value.
    """
    env: dict[str, str] = {}
    stripped = [raw.rstrip("\r\n") for raw in lines]
    for line in _fold_caller_fields([line for line in stripped if line]):
        key, value = _split_line(line)
        if key in env:
            if key in SECURITY_KEYS or key.startswith("arg_"):
                raise AGIDuplicateKey(f"header repeats agi_{key}")
            continue
        env[key] = value

    # agi_network_script is "path?query" as written after the host in agi://host/path?query;
    # fall back to agi_request (the full URL) if it is missing.
    target = env.get("network_script")
    if target is None:
        request = env.get("request")
        if request is None:
            raise AGIProtocolError("header has neither agi_network_script nor agi_request")
        parts = urlsplit(request)
        if parts.scheme in ("agi", "hagi"):
            target = parts.path + ("?" + parts.query if parts.query else "")
        else:
            target = request
    path, _, query = target.partition("?")

    numbered: list[tuple[int, str]] = []
    for key, value in env.items():
        if key.startswith("arg_"):
            index = key[4:]
            if not index.isdigit():
                raise AGIProtocolError(f"bad argument header agi_{key}")
            numbered.append((int(index), value))
    numbered.sort()

    return AGIRequest(
        script=unquote(path).lstrip("/"),
        query=dict(parse_qsl(query, keep_blank_values=True)),
        env=env,
        args=[value for _, value in numbered],
    )


async def read_line(reader: asyncio.StreamReader, max_len: int) -> bytes:
    """Read one ``\\n``-terminated line of at most ``max_len`` bytes (newline included).

    Works with a small StreamReader limit: LimitOverrunError leaves the buffer intact, so
    we consume it in pieces.  EOF raises IncompleteReadError (never loops on b"").
    """
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(exc.consumed)
            size += len(chunk)
            if size > max_len:
                raise AGIProtocolError(f"line longer than {max_len} bytes") from None
            parts.append(chunk)
            continue
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(b"".join(parts) + exc.partial, None) from None
        size += len(chunk)
        if size > max_len:
            raise AGIProtocolError(f"line longer than {max_len} bytes")
        parts.append(chunk)
        return b"".join(parts)


async def read_header(
    reader: asyncio.StreamReader,
    *,
    max_bytes: int = 16 * 1024,
    max_lines: int = 256,
    max_line_length: int = 4096,
) -> list[str]:
    """Read the header block up to the empty line; enforce limits (no timeout here).

    Raises AGIProtocolError on limit violations, binary data or EOF mid-header.
    """
    lines: list[str] = []
    total = 0
    while True:
        try:
            raw = await read_line(reader, max_line_length + 1)  # +1 for the "\n"
        except AGIProtocolError:
            raise AGIProtocolError(f"header line longer than {max_line_length} bytes") from None
        except asyncio.IncompleteReadError as exc:
            raise AGIProtocolError(
                f"EOF inside header after {len(lines)} lines ({total + len(exc.partial)} bytes)"
            ) from None
        total += len(raw)
        if total > max_bytes:
            raise AGIProtocolError(f"header larger than {max_bytes} bytes")
        if b"\x00" in raw:
            raise AGIProtocolError("binary data in header")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if not lines:
                raise AGIProtocolError("empty header")
            return lines
        lines.append(line)
        if len(lines) > max_lines:
            raise AGIProtocolError(f"header has more than {max_lines} lines")


# --------------------------------------------------------------------------- commands


def _quote(word: str) -> str:
    if any(ch in _FORBIDDEN for ch in word):
        # A newline would terminate the command line and inject a second command.
        raise AGIArgumentError(f"CR, LF or NUL in AGI argument: {word[:40]!r}")
    if word and not any(ch in _NEEDS_QUOTES for ch in word):
        return word
    # res_agi.c parse_args(): '"' toggles quoting, '\' escapes the next char, and an
    # empty "" still yields an (empty) argument.
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*words: str) -> str:
    """Build one AGI command line (without the trailing newline) from separate words.

    Pass command keywords as separate words: ``format_command("STREAM", "FILE", f, "")``.
    """
    if not words:
        raise AGIArgumentError("empty AGI command")
    if len(words) > MAX_COMMAND_WORDS:
        raise AGIArgumentError(f"more than {MAX_COMMAND_WORDS} words in AGI command")
    line = " ".join(_quote(word) for word in words)
    try:
        size = len(line.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise AGIArgumentError(f"AGI argument is not encodable as UTF-8: {exc}") from None
    if size > MAX_COMMAND_BYTES:
        raise AGIArgumentError(f"AGI command is {size} bytes, limit {MAX_COMMAND_BYTES}")
    return line


@dataclass(frozen=True)
class AGIReply:
    """A ``200`` reply.  ``result == "-1"`` usually means failure/hang-up on the channel."""

    code: int
    result: str
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    raw: str = field(default="", compare=False)

    @property
    def failed(self) -> bool:
        return self.result == "-1"

    @property
    def int_result(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_reply(lines: str | Sequence[str]) -> AGIReply:
    """Parse one complete reply (a line, or a 520 block as a list / newline-joined str).

    Returns AGIReply for 200; raises AGIHangup (511), AGIUsageError (520),
    AGICommandError (510 and other codes), AGIProtocolError (unparsable).
    """
    if isinstance(lines, str):
        lines = lines.split("\n")
    block = [line.rstrip("\r") for line in lines]
    while len(block) > 1 and not block[-1]:
        block.pop()
    if not block:
        raise AGIProtocolError("empty reply")
    first = block[0]
    match = _REPLY_LINE.match(first)
    if match is None:
        raise AGIProtocolError(f"malformed reply: {first[:120]!r}")
    code, continued, text = int(match[1]), match[2] == "-", match[3]

    if code == 520:
        if not continued:
            if len(block) > 1:
                raise AGIProtocolError("single-line 520 followed by more lines")
            raise AGIUsageError(code, text)
        if len(block) < 2 or not block[-1].startswith("520 "):
            raise AGIProtocolError("520 usage block without closing '520 ' line")
        raise AGIUsageError(code, text, "\n".join(block[1:-1]))
    if continued or len(block) > 1:
        raise AGIProtocolError(f"unexpected multi-line {code} reply")
    if code == 511:
        raise AGIHangup(first)
    if code != 200:
        raise AGICommandError(code, text)

    result = _RESULT.match(text)
    if result is not None:
        extra = {k: v for k, _, v in (token.partition("=") for token in result[3].split())}
        return AGIReply(code, result[1], result[2], extra, raw=first)
    # Lenient fallback for odd 200 lines (e.g. SPEECH RECOGNIZE text with spaces):
    # keep the result token, the full line stays available in ``raw``.
    _, _, rest = text.partition("result=")
    return AGIReply(code, rest.split(" ", 1)[0] if rest else "", raw=first)
