"""Deploy the proxy into its own virtual environment under ``$XDG_DATA_HOME/switchyard/venv``.

Two modes, chosen with ``--venv-mode``:

``pip`` (default)
    ``python -m venv`` then ``pip install <checkout>``: a self-contained environment that depends on
    neither the checkout nor the user's shell.  Needs the package index (or ``--wheelhouse DIR``,
    passed to pip as ``--find-links`` with ``--no-index``).  Slow: tens of seconds.

``inherit``
    ``python -m venv --without-pip``, Switchyard's own packages (``proxy``, ``templates``, and
    ``installer`` and ``uninstaller`` for the deployed ``uninstall.py``) *copied* into its
    site-packages, and a ``.pth`` file that puts the site-packages of the interpreter running the
    installer on its path for the third-party libraries (aiohttp, httpx, ...).  It takes well under
    a second, and the service still does not depend on the checkout, but it *does* depend on that
    interpreter's environment staying in place.  Tests use it; so can a user whose installer
    interpreter is itself a dedicated environment.  It is refused when those
    libraries are not importable here.

The same step also deploys ``uninstall.py`` beside the venv (``$XDG_DATA_HOME/switchyard/``): run
from there it re-runs itself with ``venv/bin/python``, which is why both modes carry ``installer``
and ``uninstaller`` too.

A re-run compares a hash of the checkout's package files (and the mode) with the one recorded in
the venv and rebuilds only when it differs; the previous venv is moved aside first so a failure
can put it back.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from installer import child
from installer.journal import Journal
from installer.journal_actions import BuildVenv

MANIFEST = "switchyard-deploy.json"
# Everything the service *and* the deployed uninstall.py import (pip mode gets the same set from
# pyproject.toml's package discovery).
PACKAGES = ("proxy", "templates", "installer", "uninstaller")
UNINSTALL_SCRIPT = "uninstall.py"

RUNTIME_DEPS = ("aiohttp", "httpx", "click", "jinja2", "ruamel.yaml")


class DeployError(Exception):
    pass


def checkout_root() -> Path:
    """The Switchyard checkout this installer runs from (what pip mode installs into the venv)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "proxy").is_dir():
        raise DeployError(
            f"the installer is not running from a Switchyard checkout ({root}); "
            "install it editable from the checkout (pip install -e .) and run python -m installer again"
        )
    return root


def source_hash(root: Path, mode: str) -> str:
    h = hashlib.sha256(mode.encode())
    files: list[Path] = [root / "pyproject.toml"]
    for pkg in PACKAGES:
        files.extend(sorted(p for p in (root / pkg).rglob("*") if p.is_file() and "__pycache__" not in p.parts))
    for f in files:
        if f.exists():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class DeployPlan:
    venv: Path
    mode: str
    wanted_hash: str
    current_hash: str | None

    @property
    def needed(self) -> bool:
        return self.wanted_hash != self.current_hash

    def describe(self) -> str:
        if not self.needed:
            return f"virtual environment {self.venv} is up to date"
        verb = "upgrade" if self.current_hash else "create"
        return f"{verb} the virtual environment {self.venv} ({self.mode} mode)"


def plan(venv: Path, mode: str) -> DeployPlan:
    current: str | None = None
    try:
        current = json.loads((venv / MANIFEST).read_text(encoding="utf-8")).get("source_hash")
    except (OSError, ValueError):
        current = None
    if current is not None and not (venv / "bin" / "python").exists():
        current = None
    return DeployPlan(venv, mode, source_hash(checkout_root(), mode), current)


def inherit_available() -> list[str]:
    """The runtime libraries missing from this interpreter (inherit mode needs none missing)."""
    return [m for m in RUNTIME_DEPS if importlib.util.find_spec(m) is None]


def _run(argv: list[str], what: str) -> None:
    proc = child.run(argv, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DeployError(f"{what} failed (exit {proc.returncode}): {' / '.join(tail)}")


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise DeployError(f"{venv} has no lib/python3*/site-packages; delete it and re-run")
    return found[0]


def deploy(dp: DeployPlan, journal: Journal, wheelhouse: Path | None = None) -> None:
    venv = dp.venv
    previous: Path | None = None
    journal.make_dirs(venv.parent)
    if venv.exists():
        aside = journal.backup_dir()
        journal.make_dirs(aside)
        previous = aside / "venv"
        venv.rename(previous)
    journal.record(BuildVenv(str(venv), str(previous) if previous else None))
    root = checkout_root()
    if dp.mode == "inherit":
        missing = inherit_available()
        if missing:
            raise DeployError(
                f"--venv-mode inherit needs {', '.join(missing)} importable by {sys.executable}; use --venv-mode pip"
            )
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "python -m venv")
        site = _site_packages(venv)
        for pkg in PACKAGES:
            shutil.copytree(root / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        (site / "switchyard-deps.pth").write_text("\n".join(paths) + "\n", encoding="utf-8")
    elif dp.mode == "pip":
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if wheelhouse is not None:
            argv += ["--no-index", "--find-links", str(wheelhouse)]
        _run([*argv, str(root)], "pip install of the Switchyard checkout")
    else:
        raise DeployError(f"unknown venv mode {dp.mode!r}; use pip or inherit")
    check = child.run([str(venv / "bin" / "python"), "-c", "import proxy.cli, proxy.server, uninstaller.cli"],
                      timeout=120)
    if check.returncode != 0:
        raise DeployError(
            f"the new venv cannot import the proxy or the uninstaller: {check.stderr.strip().splitlines()[-1:]}"
        )
    (venv / MANIFEST).write_text(
        json.dumps({"source_hash": dp.wanted_hash, "mode": dp.mode, "source": str(root)}) + "\n", encoding="utf-8"
    )
    journal.set("venv", {"path": str(venv), "python": str(venv / "bin" / "python"), "mode": dp.mode})


def uninstall_script_source() -> bytes:
    """The checkout's ``uninstall.py``, deployed beside the venv so it keeps working without the checkout."""
    return (checkout_root() / UNINSTALL_SCRIPT).read_bytes()


def drop_previous(journal: Journal) -> None:
    """After a successful run the moved-aside venv is no longer needed."""
    for action in journal.actions:
        if isinstance(action, BuildVenv):
            action.drop_previous()
