"""Every benchmark command the README shows, run as written with small numbers (see
conftest.py): the command still parses, runs against the real PBX and prints its figures.
An option the README shows that this file does not know how to shrink fails the test, so a
new README command cannot go untried."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from tests.bench.conftest import BenchHost

README = Path(__file__).resolve().parents[2] / "README.md"

# Each option's small value(s), for as many values as the README gives it.
SMALL: dict[str, list[str]] = {
    "--calls": ["4"],
    "--concurrency": ["1", "2"],  # at most two levels
    "--callers": ["4"],
    "--agents": ["2"],
    "--talk": ["0.5"],
    "--ramp": ["1"],
    "--talking": ["1"],
    "--queued": ["1"],
    "--ivr": ["1"],
    "--repeat": ["1"],
    "--reps": ["1"],
    "--duration": ["2"],
    "--rate-start": ["2"],
    "--resolution": ["2"],
    "--browser-calls": ["1"],
    "--contacts": ["2"],
    "--clients": ["100"],  # the notices' benchmark
    "--workers": ["4"],
    "--send": ["50"],
    "--mix": [],  # kept as written
    "--capacity": [],
    "--pg-cluster": [],  # replaced by the bench host's cluster
    "--minutes": ["0.2"],
    "--wrap": ["1"],
    "--seed": ["1"],
    "--mode": [],  # kept as written
    "--hours": ["0.5"],  # the dialler simulation's shift
    "--seeds": ["1"],
    "--answer-rate": [],  # kept as written: the simulation is quick
    "--scenario": [],
    "--dialler": [],
    "--nodes": ["20"],  # the generated flow's size
    "--rows": ["3000"],  # the call log's calls
    "--messages": ["300"],  # the silent Viber messages
    "--postgres": [],  # replaced by the bench host's database
    "--backend": [],  # kept as written
    "--drop-index": [],  # kept as written: the index compared
    "--letters": ["5"],  # the printed letters' batch
    "--mails": ["40"],  # the inquiries mailbox
    "--rates": ["2"],  # new calls per second through the balancer
}
# What each benchmark needs besides, to stay small.
EXTRA: dict[str, list[str]] = {
    "bench/infoline_load.py --capacity": ["--rate-max", "4", "--agents", "4"],
    "bench/screenpop_latency.py": [
        *("--agents", "3", "--calls", "4", "--concurrency", "2"),
        *("--browser-calls", "1", "--busy-agents", "1"),
    ],
    "bench/chaos.py": [
        "--duration",
        "20",
        "--fault-gap",
        "3",
        "6",
        "--db-down",
        "2",
        "4",
        "--serve-pause",
        "0.5",
        "1",
    ],
}


def values_of(args: list[str] | tuple[str, ...], option: str) -> list[str]:
    """The values given to ``option`` (up to the next option)."""
    after = args[args.index(option) + 1 :]
    return list(itertools.takewhile(lambda a: not a.startswith("--"), after))


def readme_commands() -> list[tuple[str, list[str]]]:
    """(script, arguments) of each `python bench/....py ...` in the README; [optional]
    parts left out."""
    found = []
    for m in re.finditer(r"python (bench/\w+\.py)([^|`\n]*)", README.read_text()):
        args = re.sub(r"\[[^\]]*\]", " ", m.group(2)).split()
        found.append((m.group(1), args))
    return found


def shrink(script: str, args: list[str], host: BenchHost) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(args):
        option = args[i]
        assert option in SMALL, f"README runs {script} with {option}: teach {__file__} it"
        values = []
        i += 1
        while i < len(args) and not args[i].startswith("--"):
            values.append(args[i])
            i += 1
        if option == "--pg-cluster":
            values = [host.pg_cluster]
        elif option == "--postgres":
            values = [host.postgres_url]
        elif SMALL[option]:
            values = SMALL[option][: len(values)]
        out += [option, *values]
    key = f"{script} --capacity" if "--capacity" in out else script
    extra = EXTRA.get(key, [])
    for j in range(0, len(extra)):
        if extra[j].startswith("--") and extra[j] in out:
            k = out.index(extra[j])
            del out[k : k + 2]  # the extra's value wins
    return [*out, *extra]


COMMANDS = sorted({(s, tuple(a)) for s, a in readme_commands()})


def test_the_readme_shows_every_benchmark() -> None:
    shown = {s for s, _ in COMMANDS}
    on_disk = {f"bench/{p.name}" for p in (README.parent / "bench").glob("*.py")}
    assert shown == on_disk, f"benchmarks the README does not show: {on_disk - shown}"


def check(script: str, args: list[str], out: str) -> None:
    """What each benchmark must have printed for the run to count."""
    if script == "bench/ari_cycles.py":
        levels = args[args.index("--concurrency") + 1 :]
        for level in levels:
            assert re.search(rf"concurrency=\s*{level} calls=4 cycles/s=\s*[\d.]+", out), out
    elif script == "bench/infoline_load.py" and "--capacity" in args:
        assert re.search(r"ratio ours/baseline: median [\d.]+x", out), out
    elif script == "bench/infoline_load.py":
        line = next(x for x in out.splitlines() if x.startswith("JSON "))
        result = json.loads(line[5:])
        for run in ("app", "baseline"):
            assert result[run]["completed"] == result[run]["attempted"] == 4, result[run]
            assert result[run]["never_heard"] == 0, result[run]
        assert result["app"]["db_outcomes"] == {"answered": 4}, result["app"]
    elif script == "bench/restart.py":
        assert "adopted 3/3; dropped 0; agents on call 1/1" in out, out
    elif script == "bench/nodes_load.py":
        rows = re.findall(r"^\s+(\d)\s+2\s+(\d+)\s+(\d+)\s+0\s+[\d.]+\s+(.*)$", out, re.M)
        assert [(n, placed, answered) for n, placed, answered, _ in rows] == [
            ("1", "4", "4"),
            ("2", "4", "4"),
        ], out
        assert rows[0][3] == "pbx1 4" and rows[1][3] == "pbx1 2, pbx2 2", out
    elif script == "bench/agent_across.py":
        # Every call reached the agent, with the phone on the caller's node and on the other.
        for place in ("same node", "other node"):
            assert re.search(rf"^{place}\s+4\s+\d+\s+\d+\s+\d+$", out, re.M), out
        assert re.search(r"across the nodes adds -?\d+ ms to the median", out), out
    elif script == "bench/takeover.py":
        kills = re.findall(
            r"taken over in ([\d.]+) s; adopted 3/3; dropped 0; agents on call 1/1", out
        )
        assert len(kills) == 1 and float(kills[0]) <= 15, out
        assert re.search(r"takeover: min [\d.]+ s, median [\d.]+ s, max [\d.]+ s over 1 kills", out)
    elif script == "bench/site_takeover.py":
        # One talking, one queued, one in the IVR on each of the two nodes.
        kills = re.findall(
            r"taken over in ([\d.]+) s; adopted 6/6; dropped 0; agents on call 2/2", out
        )
        assert len(kills) == 1 and float(kills[0]) <= 15, out
    elif script == "bench/chaos.py":
        assert re.search(r"placed\s+\d+", out), out
    elif script == "bench/screenpop_latency.py":
        assert "agents that got a pop: 3/3" in out, out
        assert re.search(r"Chromium rendered, bridge\s+n=[1-9]", out), out
        assert re.search(r"of which serve: event -> sent, bridge\s+n=[1-9]", out), out
    elif script == "bench/survey_campaign.py":
        rows = [x.split() for x in out.splitlines() if re.match(r"\s+\d+\s+\d+\s+\d+\s", x)]
        assert rows, out
        for _, calls, completed, *_rest in rows:
            # Every contact dialled; surveys completed (a simulated client can answer too
            # late on a loaded machine: the figure is the benchmark's, not this test's).
            assert int(calls) == 2 and int(completed) >= 1, out
    elif script == "bench/dialler_sim.py":
        # A row per agents x answer rate x scenario x dialler x seed, and the pacer held the
        # 3% cap in each predictive run (the script also exits 1 when it does not).
        cells = 1
        for option in ("--agents", "--answer-rate", "--scenario", "--dialler", "--seeds"):
            at = args.index(option) + 1
            cells *= len(list(itertools.takewhile(lambda a: not a.startswith("--"), args[at:])))
        row = re.compile(r"\s+\d+\s+0\.\d+\s+[a-z]+\s+[a-z]+\s+\d+\s")
        rows = [x for x in out.splitlines() if row.match(x)]
        assert len(rows) == cells, out
        predictive = sum(" predictive " in x for x in rows)
        assert f"predictive cap held: {predictive}/{predictive} runs" in out, out
    elif script == "bench/dialler_asterisk.py":
        # Both rows, every live answer put through or told within 2 s, no error in serve's
        # log (the script exits 1 otherwise); the figures are the benchmark's.
        rows = {x.split()[0]: x.split() for x in out.splitlines() if x.strip()}
        assert {"asterisk", "simulated"} <= set(rows), out
        placed, late, errors = rows["asterisk"][1], rows["asterisk"][7], rows["asterisk"][8]
        assert int(placed) >= 1 and late == "0" and errors == "0", out
    elif script == "bench/flow_diagram.py":
        # A row per flow, each drawn by the real dot (the script fails on any error).
        rows = {x.split()[0]: x.split() for x in out.splitlines() if x.strip()}
        assert rows["infoline"][1] == "15", out
        assert int(rows["generated"][1]) >= 10, out
    elif script == "bench/calllog_csv.py":
        # Every call filled is exported (they all start within the month's local days).
        assert "backend postgresql" in out if "--postgres" in args else "backend sqlite" in out
        assert re.search(r"exported 3000 rows .* [\d]+ rows/s", out), out
        assert re.search(r"peak [\d.]+ MB during it", out), out
    elif script == "bench/viber_fallbacks.py":
        # Every silent message got its SMS, once (the script exits 1 otherwise).
        assert "backend postgresql" in out if "--postgres" in args else "backend sqlite" in out
        assert re.search(r"swept: 300 SMS queued in [\d.]+ s, \d+ messages/s", out), out
        assert "a second sweep: 0 in" in out, out
    elif script == "bench/queue_report.py":
        # Each backend filled and each report read every call it covers: the year all 4.
        dropped = values_of(args, "--drop-index") if "--drop-index" in args else []
        for backend in values_of(args, "--backend"):
            assert re.search(rf"{backend}\s+filled 4 calls", out), out
            assert re.search(rf"{backend}\s+year by month\s+calls=\s+4 seconds=", out), out
            for index in dropped:
                assert re.search(rf"{backend}\s+filled 4 calls .*without {index}", out), out
    elif script == "bench/campaign_report.py":
        # Each backend filled and the year's report read every campaign call (survey ones by
        # their contacts).
        for backend in values_of(args, "--backend"):
            assert re.search(rf"{backend}\s+filled 4 calls", out), out
            assert re.search(rf"{backend}\s+year by month\s+calls=\s+4 seconds=", out), out
    elif script == "bench/agent_report.py":
        # Each backend filled, and the year's report counted every call it was given.
        for backend in values_of(args, "--backend"):
            assert re.search(rf"{backend}\s+filled 4 calls \d+ states", out), out
            assert re.search(rf"{backend}\s+year by month\s+calls=\s+4 seconds=", out), out
            assert re.search(rf"{backend}\s+day by 15 min, no state index", out), out
    elif script == "bench/notices.py":
        # The clients' greetings all queued, the first ones sent and each one's receipt
        # applied (the script waits for them), and the figures.
        assert "backend postgresql" in out if "--postgres" in args else "backend sqlite" in out
        assert re.search(r"queued 100 in [\d.]+ s: \d+ messages/s \(skipped \{\}\)", out), out
        sent = r"sent 50 in [\d.]+ s with 4 workers: \d+ messages/s \(to retry 0"
        assert re.search(sent, out), out
        assert re.search(r"delivered 50 \(receipts applied\) .* the SMSC took 75 parts", out), out
        assert re.search(r"peak memory [\d.]+ MB", out), out
    elif script == "bench/letters.py":
        # Every letter typeset, a page each (the script exits 1 otherwise), and the figures.
        assert re.search(r"typeset 5 letters in [\d.]+ s .*: \d+ letters/s; 5 pages", out), out
        assert re.search(r"memory: peak \d+ MB during it", out), out
    elif script == "bench/inquiries_mail.py":
        # Every mail read and stored as it should be (the script exits 1 otherwise).
        assert "backend postgresql" in out if "--postgres" in args else "backend sqlite" in out
        assert "mailbox: 40 mails dropped" in out, out
        assert re.search(r"read 40 mails in [\d.]+ s: \d+ mails/s; 30 inquiries", out), out
        assert "4 from machines left out" in out, out
        assert re.search(r"peak memory [\d.]+ MB", out), out
    else:
        raise AssertionError(f"no check for {script}: add one")


@pytest.mark.parametrize(
    ("script", "args"), COMMANDS, ids=[f"{s} {' '.join(a)}" for s, a in COMMANDS]
)
def test_readme_benchmark_command_runs(
    bench_host: BenchHost, script: str, args: tuple[str, ...]
) -> None:
    small = shrink(script, list(args), bench_host)
    out = bench_host.run(script, *small, timeout=900)
    check(script, small, out)
