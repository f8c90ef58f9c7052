"""The images are built from the repository's files: every package the project installs
(pyproject's package list) is copied into both (the Centrala image once lacked `surveys/`), an
install of just those files has everything the packages read at run time (flows, surveys,
templates, static files, migrations) and renders what the repository renders; the Asterisk
image makes its prompts and hold music with `centrala pbx media`, where musiconhold.conf
looks. tests/docker builds and runs the images on a Docker engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from centrala.pbx import render_generated_config
from centrala.prompts import MOH_FILE
from centrala.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "asterisk-docker"
DOCKERFILES = ("centrala.Dockerfile", "Dockerfile")


def installed_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    return {p.removesuffix("*") for p in patterns}


def copied(dockerfile: str) -> list[str]:
    """The sources the Dockerfile's first stage COPYs into /opt/centrala."""
    text = (DOCKER / dockerfile).read_text()
    first_stage = text.split("\nFROM ")[1] if dockerfile == "Dockerfile" else text
    sources = re.findall(r"^COPY (\S+) \1$", first_stage, re.M)
    assert re.search(r"^COPY pyproject.toml README.md \./$", first_stage, re.M), dockerfile
    return ["pyproject.toml", "README.md", *sources]


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_installed_package_is_copied_into_the_image(dockerfile: str) -> None:
    packages = installed_packages()
    assert packages >= {"core", "models", "centrala", "surveys"}  # the list is read, not empty
    got = set(copied(dockerfile))
    assert packages <= got, f"not copied into {dockerfile}: {sorted(packages - got)}"
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), package
    assert re.search(
        r"/opt/venv/bin/pip install --no-cache-dir \.", (DOCKER / dockerfile).read_text()
    )


def test_dockerignore_lets_through_what_the_images_copy_and_keeps_out_secrets() -> None:
    rules = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]  # fmt: skip
    assert rules[0] == "**"  # everything out, then what the Dockerfiles name back in
    allowed = {r.removeprefix("!") for r in rules if r.startswith("!")}
    wanted = set(copied("centrala.Dockerfile"))
    wanted |= {"asterisk-docker/asterisk", "asterisk-docker/docker-entrypoint.sh"}
    wanted |= {"asterisk-docker/kamailio"}  # the balancer's image (balancer.Dockerfile)
    assert wanted == allowed, sorted(wanted ^ allowed)
    asterisk = (DOCKER / "Dockerfile").read_text()
    assert "COPY asterisk-docker/asterisk/ /etc/asterisk/" in asterisk
    assert "COPY asterisk-docker/docker-entrypoint.sh " in asterisk
    balancer = (DOCKER / "balancer.Dockerfile").read_text()
    assert "COPY asterisk-docker/kamailio/kamailio.cfg /etc/kamailio/centrala.cfg" in balancer
    assert "COPY asterisk-docker/kamailio/dispatcher.list /etc/kamailio/" in balancer


def test_the_centrala_image_and_bootstrap_install_graphviz_for_the_flow_diagram() -> None:
    """web/flow_diagram.py runs `dot`; without it the diagram is a 503."""
    image = (DOCKER / "centrala.Dockerfile").read_text()
    assert re.search(
        r"--no-install-recommends \\\n\s+python3 .*\bgraphviz fonts-liberation2\b", image
    )
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert re.search(r"^packages=\(.*\bgraphviz\b.*\)$", bootstrap, re.M)


def test_the_asterisk_image_gets_the_prompts_and_hold_music_where_asterisk_looks() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    media, final = dockerfile.split("\nFROM debian:sid-slim\n")
    assert "FROM debian:sid-slim AS media" in media
    assert re.search(r"espeak-ng sox", media)  # what `centrala prompts build` runs
    assert "centrala pbx media /media" in media
    assert "COPY --from=media /media/ /" in final
    assert "asterisk-core-sounds-en" in final  # Asterisk's own prompts (digits, beeps)
    moh = (DOCKER / "asterisk" / "musiconhold.conf").read_text()
    default = moh.split("[default]", 1)[1]
    assert f"directory = /{Path(MOH_FILE).parent}\n" in default
    assert "mode = files" in default


@pytest.fixture(scope="module")
def image_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, non-editable install of exactly the files the Centrala image copies."""
    tmp = tmp_path_factory.mktemp("image")
    src = tmp / "src"
    src.mkdir()
    for name in copied("centrala.Dockerfile"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return site


# Run inside the install, away from the repository: every module imports, and the files the
# packages read at run time are there.
PROBE = r"""
import importlib, json, pkgutil, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import centrala.settings as cs
from centrala.settings import Settings
names = []
for pkg in sys.argv[2].split(","):
    mod = importlib.import_module(pkg)
    names.append(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        if ".migrations" in info.name:
            continue  # Alembic's scripts run inside Alembic only (listed below)
        importlib.import_module(info.name)
        names.append(info.name)
s = Settings()
import models, web
root = Path(models.__file__).parent
print(json.dumps({
    "repo_root": str(cs.REPO_ROOT),
    "modules": names,
    "flow": s.flow_file.is_file(),
    "surveys": [p.is_file() for p in s.survey_files],
    "migrations": sorted(p.name for p in (root / "migrations/versions").glob("*.py")),
    "env_py": (root / "migrations/env.py").is_file(),
    "templates": sorted(p.name for p in (Path(web.__file__).parent / "templates").iterdir()),
    "static": sorted(p.name for p in (Path(web.__file__).parent / "static").iterdir()),
    "translations": sorted(p.name for p in (Path(web.__file__).parent / "translations").iterdir()),
}))
"""


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CENTRALA_", "PYTHON"))}
    return {**env, "CENTRALA_DATA_DIR": str(tmp / "data"), **extra}


def test_an_install_of_the_copied_files_has_everything_read_at_run_time(
    image_install: Path, tmp_path: Path
) -> None:
    packages = sorted(installed_packages())
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(image_install), ",".join(packages)],
        cwd=tmp_path, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["repo_root"] == str(image_install)  # not the repository: the install
    repo_modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for pkg in packages
        for p in (ROOT / pkg).rglob("*.py")
        if "migrations" not in p.parts
    }
    assert repo_modules <= set(got["modules"]), sorted(repo_modules - set(got["modules"]))
    # The shipped flow a fresh install applies (it was missing: serve died at first start).
    assert got["flow"] is True
    assert got["surveys"] and all(got["surveys"])
    repo_models = ROOT / "models/migrations/versions"
    assert got["migrations"] == sorted(p.name for p in repo_models.glob("*.py"))
    assert got["env_py"] is True  # Alembic's runner (models/db.py points it there)
    assert got["templates"] == sorted(p.name for p in (ROOT / "web/templates").iterdir())
    assert got["static"] == sorted(p.name for p in (ROOT / "web/static").iterdir())
    assert got["translations"] == sorted(p.name for p in (ROOT / "web/translations").iterdir())


def test_the_installed_pbx_render_writes_what_the_repository_renders(
    image_install: Path, tmp_path: Path
) -> None:
    config = tmp_path / "centrala.toml"
    config.write_text(
        'outbound_trunk = "carrier"\n[[trunks]]\nname = "carrier"\nserver = "198.51.100.7"\n'
        'addresses = ["198.51.100.7"]\nnumbers = { "0800100200" = "infoline" }\n'
    )
    env = _clean_env(
        tmp_path,
        CENTRALA_CONFIG=str(config),
        CENTRALA_AGI_SECRET="agi-secret-for-the-test",
        PYTHONPATH=str(image_install),
    )
    out = tmp_path / "rendered"
    proc = subprocess.run(
        [sys.executable, "-m", "centrala.cli", "pbx", "render", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        agi_secret="agi-secret-for-the-test",
        outbound_trunk="carrier",
        trunks=[
            {
                "name": "carrier",
                "server": "198.51.100.7",
                "addresses": ["198.51.100.7"],
                "numbers": {"0800100200": "infoline"},
            }
        ],
    )
    assert {p.name: p.read_text() for p in out.iterdir()} == render_generated_config(settings)


# A private key block with a real key's length of base64 in it.
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{200,}")
SECRET_LINE = re.compile(r"^\s*(password|secret)\s*=\s*\S", re.I | re.M)


def test_the_repository_carries_no_private_key_and_no_secret_in_asterisk_config() -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert "asterisk-docker/compose.yaml" in files
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(errors="replace")
        assert not PRIVATE_KEY.search(text), f"{name} carries a private key"
        if name.endswith(".conf"):
            assert not SECRET_LINE.search(text), f"{name} carries a password or secret"
    compose = (DOCKER / "compose.yaml").read_text()
    for variable in ("CENTRALA_ARI_PASSWORD", "CENTRALA_AMI_SECRET", "POSTGRES_PASSWORD"):
        assert f"${{{variable}:?" in compose, variable  # from .env, refused when unset
