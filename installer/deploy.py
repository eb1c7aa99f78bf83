"""Deploy the proxy into its own virtual environment under ``$XDG_DATA_HOME/switchyard/venv``.

Two modes, chosen with ``--venv-mode``:

``pip`` (default)
    ``python -m venv`` then ``pip install <checkout>``: a self-contained environment that depends on
    neither the checkout nor the user's shell.  Needs the package index (or ``--wheelhouse DIR``,
    passed to pip as ``--find-links`` with ``--no-index``).  Slow: tens of seconds, so pip's lines
    are shown as they come.  Run from an installed distribution (``pip install .`` or ``pipx
    install`` of a checkout, no checkout left to install from), pip installs the distribution's own
    requirements and Switchyard's packages are copied from where they are installed.

``inherit``
    ``python -m venv --without-pip``, Switchyard's own packages (``proxy``, ``templates``, and
    ``installer`` and ``uninstaller`` for the deployed ``uninstall.py``) *copied* into its
    site-packages, and a ``.pth`` file that puts the site-packages of the interpreter running the
    installer on its path for the third-party libraries (aiohttp, click, ...).  It takes well under
    a second, and the service still does not depend on the checkout, but it *does* depend on that
    interpreter's environment staying in place.  Tests use it; so can a user whose installer
    interpreter is itself a dedicated environment.  It is refused when those
    libraries are not importable here.

The same step also deploys the uninstaller's script (``uninstaller/bootstrap.py``, what the
checkout's ``uninstall.py`` runs) beside the venv as ``$XDG_DATA_HOME/switchyard/uninstall.py``: run
from there it re-runs itself with ``venv/bin/python``, which is why both modes carry ``installer``
and ``uninstaller`` too.

A re-run compares a hash of the checkout's package files (and the mode) with the one recorded in
the venv and rebuilds only when it differs; the previous venv is moved aside first so a failure
can put it back.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from installer import child
from installer.journal import Journal
from installer.journal_actions import BuildVenv

MANIFEST = "switchyard-deploy.json"
# Everything the service *and* the deployed uninstall.py import (pip mode gets the same set from
# pyproject.toml's package discovery).
PACKAGES = ("proxy", "templates", "installer", "uninstaller")
DISTRIBUTION = "switchyard"

RUNTIME_DEPS = ("aiohttp", "click", "jinja2", "ruamel.yaml")


class DeployError(Exception):
    pass


def checkout_root() -> Path | None:
    """The Switchyard checkout this installer runs from, or None when it runs from an installed distribution."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "proxy").is_dir() and (root / "uninstall.py").is_file():
        return root
    return None


def package_dir(pkg: str) -> Path:
    """Where one of Switchyard's packages is, in a checkout or in site-packages."""
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise DeployError(f"Switchyard's package {pkg!r} is not importable by {sys.executable}; reinstall Switchyard")
    return Path(next(iter(spec.submodule_search_locations)))


def requirements() -> list[str]:
    """The installed distribution's runtime requirements (no extras), for pip."""
    try:
        reqs = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise DeployError(
            "the installer runs neither from a Switchyard checkout nor from an installed distribution; "
            "run it from a checkout, or pip install the checkout and run python -m installer again"
        ) from None
    return [r for r in reqs if "extra ==" not in r]


def source_hash(mode: str) -> str:
    h = hashlib.sha256(mode.encode())
    root = checkout_root()
    files: list[tuple[str, Path]] = [("pyproject.toml", root / "pyproject.toml")] if root is not None else []
    for pkg in PACKAGES:
        base = package_dir(pkg)
        files.extend((f"{pkg}/{p.relative_to(base)}", p) for p in sorted(base.rglob("*"))
                     if p.is_file() and "__pycache__" not in p.parts)
    for name, f in files:
        h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
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
    return DeployPlan(venv, mode, source_hash(mode), current)


def inherit_available() -> list[str]:
    """The runtime libraries missing from this interpreter (inherit mode needs none missing)."""
    return [m for m in RUNTIME_DEPS if importlib.util.find_spec(m) is None]


def _run(argv: list[str], what: str, on_line: Callable[[str], None] | None = None) -> None:
    proc = child.run(argv, timeout=900, on_line=on_line)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DeployError(f"{what} failed (exit {proc.returncode}): {' / '.join(tail)}")


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise DeployError(f"{venv} has no lib/python3*/site-packages; delete it and re-run")
    return found[0]


def _copy_packages(site: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(package_dir(pkg), site / pkg, ignore=shutil.ignore_patterns("__pycache__"))


def deploy(dp: DeployPlan, journal: Journal, wheelhouse: Path | None = None,
           progress: Callable[[str], None] | None = None) -> None:
    """Build the venv; ``progress`` gets pip's output lines as they come."""
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
        _copy_packages(site)
        paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        (site / "switchyard-deps.pth").write_text("\n".join(paths) + "\n", encoding="utf-8")
    elif dp.mode == "pip":
        _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "--progress-bar", "off",
                "--disable-pip-version-check"]
        if wheelhouse is not None:
            argv += ["--no-index", "--find-links", str(wheelhouse)]
        if root is not None:
            _run([*argv, str(root)], "pip install of the Switchyard checkout", progress)
        else:
            _run([*argv, *requirements()], "pip install of Switchyard's requirements", progress)
            _copy_packages(_site_packages(venv))
    else:
        raise DeployError(f"unknown venv mode {dp.mode!r}; use pip or inherit")
    check = child.run([str(venv / "bin" / "python"), "-c", "import proxy.cli, proxy.server, uninstaller.cli"],
                      timeout=120)
    if check.returncode != 0:
        raise DeployError(
            f"the new venv cannot import the proxy or the uninstaller: {check.stderr.strip().splitlines()[-1:]}"
        )
    (venv / MANIFEST).write_text(
        json.dumps({"source_hash": dp.wanted_hash, "mode": dp.mode, "source": str(root or package_dir("proxy").parent)})
        + "\n", encoding="utf-8"
    )
    journal.set("venv", {"path": str(venv), "python": str(venv / "bin" / "python"), "mode": dp.mode})


def uninstall_script_source() -> bytes:
    """The uninstaller's stdlib-only script, deployed beside the venv so it works without the checkout."""
    return (package_dir("uninstaller") / "bootstrap.py").read_bytes()


def drop_previous(journal: Journal) -> None:
    """After a successful run the moved-aside venv is no longer needed."""
    for action in journal.actions:
        if isinstance(action, BuildVenv):
            action.drop_previous()
