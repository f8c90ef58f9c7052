"""The README's quick start, as written: `./scripts/run` sets everything up and serves on the
embedded defaults (web on 8080), then the three commands of "Call the info line and watch it
answer" — the CLI originate, `curl /status` and `sqlite3` on the call rows — are run from the
README's own text and do what it says.

Differences from a fresh machine, and why: the data directory is the test's (not the
checkout's `var/`, the README's `var/` is rewritten to it), and the PBX keeps the tests'
simulated phones (CENTRALA_PBX_EXTRA_CONFIG_DIR), since it is shared with the other tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import aiohttp

from tests.integration import live
from tests.integration.conftest import PBX, Callers, _stop_and_check
from tests.support import wait_until

ROOT = Path(__file__).resolve().parents[2]
STATUS = "http://127.0.0.1:8080/status"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    after = text.split("Call the info line and watch it answer", 1)[1]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None, "the quick start's command block is gone from the README"
    commands = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [c for c in commands if c]


def sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_readme_quick_start_runs_as_written(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    originate, curl, query = readme_commands()
    assert originate.startswith(".venv/bin/centrala pbx cli") and "originate" in originate
    assert curl.startswith("curl") and ":8080/status" in curl
    assert query.startswith("sqlite3 var/centrala.db")
    for other, running in list(live.servers.items()):  # one serve on the Stasis app at a time
        await _stop_and_check(other, running.value)

    env = {
        **os.environ,
        "CENTRALA_DATA_DIR": str(tmp_path),
        "CENTRALA_PBX_EXTRA_CONFIG_DIR": str(ROOT / "tests" / "asterisk"),
        "CENTRALA_LOG_FORMAT": "json",
    }
    env.pop("CENTRALA_DATABASE_URL", None)  # the embedded default: SQLite in the data dir
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [str(ROOT / "scripts" / "run")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:

        async def serving() -> bool:
            assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(STATUS, timeout=aiohttp.ClientTimeout(total=3)) as resp,
                ):
                    return resp.status == 200 and (await resp.json())["ok"] is True
            except aiohttp.ClientError:
                return False

        await wait_until(serving, timeout=180, message="scripts/run serving on 8080")
        before = {c["id"] for c in await callers.ari.channels()}

        done = await asyncio.to_thread(sh, originate, env)
        assert done.returncode == 0, done.stdout + done.stderr

        async def the_caller() -> str | None:
            new = [c for c in await callers.ari.channels() if c["id"] not in before]
            ours = [c["id"] for c in new if c["name"].startswith("Local/0800100200@from-trunk")]
            return next((i for i in ours if not i.endswith(";2")), None) if ours else None

        phone: str = await wait_until(the_caller, message="the originated call's channel")

        async def answered() -> bool:
            done = await asyncio.to_thread(
                sh, f"sqlite3 {tmp_path}/centrala.db 'select answered_at from calls'", env
            )
            return done.returncode == 0 and done.stdout.strip() != ""

        await wait_until(answered, timeout=20, message="the info line answered the call")

        status = await asyncio.to_thread(sh, curl, env)
        assert status.returncode == 0, status.stderr
        body = json.loads(status.stdout)
        assert body["ok"] is True and body["calls_in_progress"] == 1, body

        await callers.ari.hangup(phone)

        async def closed() -> str | None:
            done = await asyncio.to_thread(
                sh, query.replace("var/centrala.db", f"{tmp_path}/centrala.db"), env
            )
            assert done.returncode == 0, done.stderr
            rows = [r for r in done.stdout.splitlines() if r]
            return rows[0] if len(rows) == 1 and rows[0].split("|")[1] else None

        row = await wait_until(closed, timeout=20, message="the call's row closed")
        _number, outcome, _cause = row.split("|")
        assert outcome == "abandoned_in_ivr", row
    finally:
        run.send_signal(signal.SIGTERM)  # scripts/run execs serve: this is serve
        code = await asyncio.to_thread(run.wait, 30)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
