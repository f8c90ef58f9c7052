"""A Docker engine for tests/docker, named by CENTRALA_TEST_DOCKER_HOST (scripts/test-docker
starts one). An engine that does not answer fails the tests; nothing is skipped."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from centrala.settings import REPO_ROOT


@dataclass(frozen=True)
class Docker:
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        proc = subprocess.run(
            list(args),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        return proc.stdout


@pytest.fixture(scope="session")
def docker() -> Iterator[Docker]:
    host = os.environ.get("CENTRALA_TEST_DOCKER_HOST", "")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env.update(DOCKER_HOST=host, DOCKER_BUILDKIT=os.environ.get("DOCKER_BUILDKIT", "0"))
    engine = Docker(env)
    version = engine.run("docker", "version", "--format", "{{.Server.Version}}", timeout=30)
    assert version.strip(), "no Docker engine answered"
    yield engine


def readme_docker_commands() -> list[list[str]]:
    """README's "Deployment with Docker" commands, in order (`docker …`, `docker-compose …`)."""
    import re
    import shlex

    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Deployment with Docker", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith(("docker ", "docker-compose ")):
                commands.append(shlex.split(line))
    return commands


def tmp_config(tmp: Path) -> Path:
    config = tmp / "centrala.toml"
    config.write_text(
        'outbound_trunk = "carrier"\n\n[[trunks]]\nname = "carrier"\n'
        'server = "198.51.100.7:5060"\naddresses = ["198.51.100.7"]\ncodecs = ["alaw"]\n'
        'numbers = { "0800100200" = "infoline" }\n'
    )
    return config
