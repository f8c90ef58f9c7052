"""The Centrala image is built from the repository's files: every package the project installs
(pyproject's package list) is copied into it, so `centrala serve` in the image does not die
on a missing import (it once lacked `surveys/`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_installed_package_is_copied_into_the_centrala_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.removesuffix("*") for p in patterns}
    assert packages >= {"core", "models", "centrala"}  # the list is read, not empty
    dockerfile = (ROOT / "asterisk-docker" / "centrala.Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \1$", dockerfile, re.M))
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), package
    # What pip needs to install them, and the package data they read at run time.
    assert re.search(r"^COPY pyproject.toml README.md \./$", dockerfile, re.M)
    assert re.search(r"^RUN pip install --no-cache-dir \.$", dockerfile, re.M)
