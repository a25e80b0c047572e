"""What `pip install agentos-batch` gets: the sdist and the wheel `python -m build` makes from a
clean copy of the project, the wheel installed into a fresh virtualenv (its dependencies from the
package index), and the `agentos` command it installs running items in worker processes there."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.processes import REPO, clean_env

DISTRIBUTION = "agentos-batch"
#: what an sdist is made from (MANIFEST.in and setup.cfg say what goes in)
SOURCES = ("agentos", "tests", "examples", "scripts", "bench")
SOURCE_FILES = ("setup.cfg", "pyproject.toml", "README.md", "MANIFEST.in", "Makefile")


def test_the_distribution_name_is_the_one_install_hints_give() -> None:
    """Every `pip install '...[extra]'` agentos prints names the distribution setup.cfg builds:
    `agentos` on the package index is another project."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["metadata"]["name"] == DISTRIBUTION
    extras = set(config["options.extras_require"])
    hints = []
    for path in (REPO / "agentos").rglob("*.py"):
        hints += re.findall(r"'([\w.-]+)\[(\w+)\]'", path.read_text(encoding="utf-8"))
    assert hints, "the optional extras are named in errors and help"
    assert {name for name, _ in hints} == {DISTRIBUTION}
    assert {extra for _, extra in hints} <= extras


def _copy_project(target: Path) -> None:
    """The project as a fresh clone has it: no virtualenv, no build output, no caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".agentos", "results", "node")
    for name in SOURCES:
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, target / name)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _copy_project(source)
    dist = tmp_path / "dist"
    # --no-isolation: setuptools and wheel from our virtualenv (make install puts them there),
    # not downloaded into a throwaway one on each run; what is built is the same
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = dist.glob("agentos_batch-*-py3-none-any.whl")
    (sdist,) = dist.glob("agentos_batch-*.tar.gz")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = archive.read(metadata).decode()
        entry_points = archive.read(metadata.replace("METADATA", "entry_points.txt")).decode()
    assert {"agentos/__init__.py", "agentos/py.typed", "agentos/__main__.py"} <= set(names)
    dist_info = metadata.split("/")[0]  # agentos_batch-0.1.0.dist-info
    assert {n.split("/")[0] for n in names} == {"agentos", dist_info}  # no tests, no bench
    assert f"Name: {DISTRIBUTION}\n" in meta
    assert "agentos = agentos.__main__:main" in entry_points
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"setup.cfg", "pyproject.toml", "README.md", "agentos/py.typed"} <= members
    assert "tests/conftest.py" in members and "examples/demo-repo/ideas/active" in members
    assert not [m for m in members if m.endswith(".pyc")]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    # a current pip, as make install has: older ones do not show what a build backend warns
    upgraded = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--upgrade", "pip"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    # from a folder that is not the project: nothing is imported from the source tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    agentos = venv / "bin" / "agentos"
    version = subprocess.run(
        [str(agentos), "--version"], capture_output=True, text=True, cwd=elsewhere, env=env
    )
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"agentos, version \d+\.\d+\.\d+\S*\n", version.stdout)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import agentos; print(agentos.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert where.stdout.startswith(str(venv)), where.stdout

    ran = subprocess.run(
        [str(agentos), "run", "-q", "-j", "2", "--", "echo", "hello {}"],
        input="a\nb\n",
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert sorted(ran.stdout.splitlines()) == ["[item-1] hello a", "[item-2] hello b"]
    assert os.path.isdir(elsewhere / ".agentos" / "runs")

    # the editable install `make install` does (over the wheel, in the same virtualenv): no
    # setuptools warning box on a newcomer's first command, and the code is the source tree's
    recipe = re.search(r"pip install -q -e '\.\[dev\]'(.*)", (REPO / "Makefile").read_text())
    assert recipe is not None, "make install's editable install"
    editable = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-e",
         str(source), *recipe.group(1).split()],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )  # fmt: skip
    assert editable.returncode == 0, editable.stderr[-3000:]
    said = [
        line
        for line in editable.stderr.splitlines()
        if "WARNING: Location" not in line  # this machine's pip configuration, not ours
    ]
    assert not [line for line in said if "editable" in line.lower() or "!!" in line], said
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import agentos; print(agentos.__file__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert where.stdout.strip() == str(source / "agentos" / "__init__.py")
