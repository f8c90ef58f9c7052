"""The benchmarks' commands, as the README shows them, on a host of their own: each benchmark
starts its own `centrala serve` and needs the PBX to itself, so they run in a network
namespace made for this session, with a copy of the cached PBX root and (for the chaos run)
a PostgreSQL cluster started inside it, while the other tests keep theirs. Small numbers
replace the README's (a run proves the command works and its figures come out; the figures
themselves are the benchmarks' business)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from centrala.settings import Settings
from tests.integration.conftest import PBX, pbx

__all__ = ["pbx"]

ROOT = Path(__file__).resolve().parents[2]
PG_PORT = 5432


@dataclass
class BenchHost:
    netns: str
    pbx_root: Path
    pg_cluster: str
    postgres_url: str

    def run(self, *args: str, timeout: float = 600) -> str:
        """``python bench/...`` in the namespace; its standard output (fails on a non-zero
        exit, with both outputs)."""
        env = {
            **os.environ,
            "CENTRALA_PBX_ROOT": str(self.pbx_root),
            "CENTRALA_TEST_PG_CLUSTER": self.pg_cluster,
            "CENTRALA_TEST_POSTGRES_URL": self.postgres_url,
        }
        # No FastAGI secret or data directory of the outer tests leaks in.
        for name in ("CENTRALA_AGI_SECRET", "CENTRALA_DATA_DIR", "CENTRALA_DATABASE_URL"):
            env.pop(name, None)
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, (
            f"{' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
            f"\n--- stderr\n{done.stderr[-5000:]}"
        )
        return done.stdout


def _sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=120)


def _psql(netns: str, socket_dir: str, sql: str) -> None:
    _sh("ip", "netns", "exec", netns, "su", "postgres", "-c",
        f'psql -h {socket_dir} -p {PG_PORT} -qc "{sql}"')  # fmt: skip


@pytest.fixture(scope="session")
def bench_host(pbx: PBX) -> Iterator[BenchHost]:
    """``pbx``: the cached PBX root is built (and the other tests' Asterisk up) first."""
    name = f"cbench{uuid.uuid4().hex[:6]}"
    cached = Path(Settings().pbx_root)
    pbx_root = cached.parent / f"pbx-{name}"
    version = sorted(os.listdir("/usr/lib/postgresql"), key=lambda v: int(v))[-1]
    socket_dir = f"/var/run/postgresql/{name}"
    _sh("ip", "netns", "add", name)
    try:
        _sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        _sh("cp", "-a", str(cached), str(pbx_root))
        os.makedirs(socket_dir, exist_ok=True)
        shutil.chown(socket_dir, "postgres", "postgres")
        _sh("pg_createcluster", version, name, "-p", str(PG_PORT), "--",
            "--auth-local=trust")  # fmt: skip
        conf = Path(f"/etc/postgresql/{version}/{name}/postgresql.conf")
        with conf.open("a") as f:
            f.write(f"\nunix_socket_directories = '{socket_dir}'\nlisten_addresses = '127.0.0.1'\n")
        _sh("ip", "netns", "exec", name, "pg_ctlcluster", version, name, "start")
        _psql(name, socket_dir, "CREATE ROLE centrala LOGIN CREATEDB PASSWORD 'centrala'")
        _psql(name, socket_dir, "CREATE DATABASE centrala_test OWNER centrala")
        host = BenchHost(
            netns=name,
            pbx_root=pbx_root,
            pg_cluster=f"{version}/{name}",
            postgres_url=f"postgresql+asyncpg://centrala:centrala@127.0.0.1:{PG_PORT}/centrala_test",
        )
        # Most benchmarks start the PBX themselves; bench/ari_cycles.py needs it up, as its
        # docstring says.
        host.run("-m", "centrala.cli", "pbx", "up", timeout=300)
        yield host
    finally:
        env = {**os.environ, "CENTRALA_PBX_ROOT": str(pbx_root)}
        subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, "-m", "centrala.cli", "pbx", "down"],
            env=env, cwd=ROOT, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        subprocess.run(["ip", "netns", "exec", name, "pg_ctlcluster", version, name, "stop"],
                       capture_output=True, timeout=120, check=False)  # fmt: skip
        subprocess.run(["pg_dropcluster", version, name], capture_output=True, check=False)
        # Whatever a benchmark left running in the namespace (a serve it could not stop).
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in pids.stdout.split():
            subprocess.run(["kill", "-9", pid], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        shutil.rmtree(pbx_root, ignore_errors=True)
        for node in ("pbx1", "pbx2"):  # bench/nodes_load.py's nodes (tests/cluster/topology.py)
            shutil.rmtree(f"{pbx_root}-{node}", ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)
