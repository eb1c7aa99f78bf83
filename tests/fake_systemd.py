"""A stand-in systemd user manager for tests, and the unit-file reading it shares with them.

The build and CI machines have ``systemctl`` but no running user manager (see the field notes), so
tests put a fake ``systemctl`` (and ``loginctl``) first on PATH: :func:`install_fake_systemd`.  It
does what the manager would do with *the unit file as written*: ``daemon-reload`` loads units from
the unit directory, ``start`` runs ``ExecStartPre=`` lines (a leading ``-`` ignores a failure),
then ``ExecStart=`` as the main process, with ``EnvironmentFile=``/``Environment=``,
``WorkingDirectory=`` and ``StandardOutput=``/``StandardError=append:FILE`` honoured and the
manager's own small environment (not the caller's).  The programs run are real.

A detached supervisor process (``python -m tests.fake_systemd STATE UNITDIR __supervise UNIT``)
plays the manager's part for one unit: it runs the lines, writes the main PID, waits for the exit
and records the result, so ``is-active``/``show`` can tell "active", "inactive" and "failed".
``start`` returns once the main process was executed (``Type=exec`` semantics).  Not emulated:
``Restart=`` (a failed unit stays failed) and specifiers other than ``%%``.

Every call is appended to ``STATE/calls`` as its arguments without ``--user``/``--no-pager``.
Test knob: a file ``STATE/exec-start-extra`` holds arguments appended to ``ExecStart=`` (one per
line), to make a real ExecStart fail at once.

Standard library only: the fake runs under whatever interpreter the test chose.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

# What a user manager's services see by default (plus what EnvironmentFile=/Environment= add).
MANAGER_ENV_NAMES = ("HOME", "USER", "LOGNAME", "SHELL", "PATH", "LANG", "XDG_RUNTIME_DIR")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------------------------------
# unit files


@dataclass
class Unit:
    """A parsed unit file: every ``Key=value`` of each section, in order (keys may repeat)."""

    sections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def all(self, section: str, key: str) -> list[str]:
        return [v for k, v in self.sections.get(section, []) if k == key]

    def one(self, section: str, key: str) -> str | None:
        values = self.all(section, key)
        return values[-1] if values else None


def parse_unit(text: str) -> Unit:
    unit = Unit()
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, [])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a Key=value line in a unit file: {raw!r}")
        unit.sections.setdefault(section, []).append((key.strip(), value.strip()))
    return unit


@dataclass(frozen=True)
class ExecLine:
    argv: list[str]
    ignore_failure: bool


def parse_exec(value: str) -> ExecLine:
    """An ``Exec*=`` value: the ``-`` prefix, then words; ``%%`` is a literal ``%``."""
    ignore = value.startswith("-")
    words = shlex.split(value[1:] if ignore else value)
    argv = [w.replace("%%", "%") for w in words]
    if not argv or not os.path.isabs(argv[0]):
        raise ValueError(f"the command must start with an absolute path: {value!r}")
    return ExecLine(argv, ignore)


def parse_environment_file(text: str) -> dict[str, str]:
    """systemd's EnvironmentFile= syntax, as much as Switchyard writes: KEY=VALUE, comments, single quotes
    (verbatim, systemd.exec(5)), double quotes (backslash escapes)."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
            unescaped, i = [], 0
            while i < len(value):
                if value[i] == "\\" and i + 1 < len(value):
                    i += 1
                unescaped.append(value[i])
                i += 1
            value = "".join(unescaped)
        out[key.strip()] = value
    return out


def service_env(unit: Unit, manager_env: dict[str, str]) -> dict[str, str]:
    env = {k: manager_env[k] for k in MANAGER_ENV_NAMES if k in manager_env}
    for value in unit.all("Service", "Environment"):
        for word in shlex.split(value):
            k, _, v = word.partition("=")
            env[k] = v
    for value in unit.all("Service", "EnvironmentFile"):
        optional = value.startswith("-")
        path = value[1:] if optional else value
        try:
            env.update(parse_environment_file(Path(path).read_text(encoding="utf-8")))
        except OSError:
            if not optional:
                raise
    return env


def _output(unit: Unit, key: str) -> str | None:
    value = unit.one("Service", key)
    if value and value.startswith("append:"):
        return value[len("append:"):]
    return None


@dataclass
class Prepared:
    """What the manager sets up before running a unit's commands."""

    env: dict[str, str]
    cwd: str | None
    stdout: IO[bytes] | int
    stderr: IO[bytes] | int


def prepare(unit: Unit, manager_env: dict[str, str]) -> Prepared:
    """Environment, working directory and output files; OSError when one is missing (a failed start)."""
    env = service_env(unit, manager_env)
    cwd = unit.one("Service", "WorkingDirectory")
    if cwd is not None and not Path(cwd.lstrip("-")).is_dir():
        raise FileNotFoundError(f"WorkingDirectory={cwd} does not exist (200/CHDIR)")
    out_path, err_path = _output(unit, "StandardOutput"), _output(unit, "StandardError")
    stdout: IO[bytes] | int = open(out_path, "ab") if out_path else subprocess.DEVNULL  # noqa: SIM115 - kept open for the child
    stderr: IO[bytes] | int = stdout
    if err_path and err_path != out_path:
        stderr = open(err_path, "ab")  # noqa: SIM115
    return Prepared(env, cwd.lstrip("-") if cwd else None, stdout, stderr)


def run_pre(unit: Unit, prep: Prepared) -> str | None:
    """Run every ExecStartPre= line in order; the failure that stops the start, or None."""
    for value in unit.all("Service", "ExecStartPre"):
        line = parse_exec(value)
        try:
            rc = subprocess.run(line.argv, env=prep.env, cwd=prep.cwd, stdin=subprocess.DEVNULL,
                                stdout=prep.stdout, stderr=prep.stderr, check=False, timeout=60).returncode
        except OSError as exc:
            rc, why = 203, f"{exc}"
        else:
            why = f"exited {rc}"
        if rc != 0 and not line.ignore_failure:
            return f"ExecStartPre={value} {why}"
    return None


def spawn_main(unit: Unit, prep: Prepared, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    value = unit.one("Service", "ExecStart")
    if value is None:
        raise ValueError("the unit has no ExecStart=")
    line = parse_exec(value)
    return subprocess.Popen([*line.argv, *(extra or [])], env=prep.env, cwd=prep.cwd, stdin=subprocess.DEVNULL,
                            stdout=prep.stdout, stderr=prep.stderr)


# ---------------------------------------------------------------------------------------------
# the fake manager


def install_fake_systemd(bindir: Path, state: Path, unit_dir: Path, linger: bool = False) -> None:
    """Write ``systemctl`` and ``loginctl`` into BINDIR (put it first on PATH)."""
    repo = Path(__file__).resolve().parents[1]
    bindir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    systemctl = bindir / "systemctl"
    systemctl.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(repo))} exec {shlex.quote(sys.executable)} -m tests.fake_systemd "
        f"{shlex.quote(str(state))} {shlex.quote(str(unit_dir))} \"$@\"\n"
    )
    loginctl = bindir / "loginctl"
    loginctl.write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {shlex.quote(str(state / 'loginctl-calls'))}\n"
        "case \"$1\" in\n"
        f"  show-user) echo Linger={'yes' if linger else 'no'} ;;\n"
        "  *) exit 1 ;;\n"
        "esac\n"
    )
    for f in (systemctl, loginctl):
        f.chmod(0o755)


def calls(state: Path) -> list[str]:
    try:
        return (state / "calls").read_text().splitlines()
    except FileNotFoundError:
        return []


class _Manager:
    def __init__(self, state: Path, unit_dir: Path) -> None:
        self.state = state
        self.unit_dir = unit_dir
        self.loaded = state / "loaded"
        self.enabled = state / "enabled"

    # ---- per-unit state files -------------------------------------------------------------
    def _pid_path(self, name: str) -> Path:
        return self.state / f"{name}.main.pid"

    def _result_path(self, name: str) -> Path:
        return self.state / f"{name}.result.json"

    def main_pid(self, name: str) -> int:
        try:
            pid = int(self._pid_path(name).read_text())
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return 0
            return pid
        except (OSError, ValueError):
            return 0

    def result(self, name: str) -> dict[str, object] | None:
        try:
            data: dict[str, object] = json.loads(self._result_path(name).read_text())
            return data
        except (OSError, ValueError):
            return None

    def active_state(self, name: str) -> str:
        if self.main_pid(name):
            return "active"
        res = self.result(name)
        return "failed" if res is not None and res.get("failed") else "inactive"

    def unit(self, name: str) -> Unit | None:
        for path in (self.loaded / name, self.unit_dir / name):
            if path.is_file():
                return parse_unit(path.read_text(encoding="utf-8"))
        return None

    # ---- verbs ----------------------------------------------------------------------------
    def daemon_reload(self) -> int:
        self.loaded.mkdir(exist_ok=True)
        for old in self.loaded.iterdir():
            old.unlink()
        if self.unit_dir.is_dir():
            for f in self.unit_dir.glob("*.service"):
                (self.loaded / f.name).write_bytes(f.read_bytes())
        return 0

    def enable(self, name: str) -> int:
        unit = self.unit(name)
        if unit is None:
            return _fail(f"Failed to enable unit: Unit file {name} does not exist.")
        if unit.one("Install", "WantedBy") is None:
            return _fail(f"The unit {name} has no [Install] section; nothing to enable.")
        self.enabled.mkdir(exist_ok=True)
        (self.enabled / name).write_text("")
        return 0

    def disable(self, name: str) -> int:
        (self.enabled / name).unlink(missing_ok=True)
        return 0

    def start(self, name: str) -> int:
        if self.unit(name) is None:
            return _fail(f"Failed to start {name}: Unit {name} not found.")
        if self.main_pid(name):
            return 0
        self._result_path(name).unlink(missing_ok=True)
        self._pid_path(name).unlink(missing_ok=True)
        manager_env = dict(os.environ)
        manager_env.pop("PYTHONPATH", None)
        subprocess.Popen(
            [sys.executable, "-m", "tests.fake_systemd", str(self.state), str(self.unit_dir), "__supervise", name],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            res = self.result(name)
            if res is not None and res.get("phase") == "start":
                return _fail(f"Job for {name} failed because the control process exited with error code: "
                             f"{res.get('detail')}")
            if self._pid_path(name).exists():
                return 0
            time.sleep(0.05)
        return _fail(f"Job for {name} timed out.")

    def stop(self, name: str) -> int:
        pid = self.main_pid(name)
        if not pid:
            return 0
        (self.state / f"{name}.stopping").write_text("")
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.result(name) is not None:
                return 0
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return 0

    def show(self, name: str, props: list[str], value_only: bool) -> int:
        pid = self.main_pid(name)
        state = self.active_state(name)
        res = self.result(name) or {}
        values = {
            "ActiveState": state,
            "SubState": {"active": "running", "failed": "failed"}.get(state, "dead"),
            "MainPID": str(pid),
            "NRestarts": "0",
            "ExecMainStatus": str(res.get("status", 0)),
            "UnitFileState": "enabled" if (self.enabled / name).exists() else "disabled",
        }
        for p in props or list(values):
            v = values.get(p, "")
            print(v if value_only else f"{p}={v}")
        return 0

    def supervise(self, name: str) -> None:
        """The manager's part for one start: runs in its own detached process."""
        unit = self.unit(name)
        assert unit is not None
        manager_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        extra_file = self.state / "exec-start-extra"
        extra = extra_file.read_text().splitlines() if extra_file.exists() else []
        (self.state / f"{name}.stopping").unlink(missing_ok=True)
        try:
            prep = prepare(unit, manager_env)
            problem = run_pre(unit, prep)
            if problem is not None:
                self._write_result(name, {"phase": "start", "failed": True, "detail": problem})
                return
            proc = spawn_main(unit, prep, extra)
        except (OSError, ValueError) as exc:
            self._write_result(name, {"phase": "start", "failed": True, "detail": f"{exc} (203/EXEC)"})
            return
        self._pid_path(name).write_text(str(proc.pid))
        rc = proc.wait()
        stopping = (self.state / f"{name}.stopping").exists()
        # A stop's SIGTERM ending the process is a clean stop, as systemd counts it.
        clean = rc == 0 or (stopping and rc == -signal.SIGTERM)
        self._pid_path(name).unlink(missing_ok=True)
        self._write_result(name, {"phase": "run", "failed": not clean, "status": rc, "detail": f"exited {rc}"})

    def _write_result(self, name: str, data: dict[str, object]) -> None:
        tmp = self._result_path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._result_path(name))


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    state, unit_dir, *rest = argv
    mgr = _Manager(Path(state), Path(unit_dir))
    if rest[:1] == ["__supervise"]:
        mgr.supervise(rest[1])
        return 0
    args = [a for a in rest if a not in ("--user", "--no-pager", "--quiet", "-q")]
    with open(Path(state) / "calls", "a", encoding="utf-8") as fh:
        fh.write(" ".join(args) + "\n")
    if not args:
        return _fail("fake systemctl: no command")
    cmd, *more = args
    now = "--now" in more
    value_only = "--value" in more
    props: list[str] = []
    names: list[str] = []
    it = iter(m for m in more if m not in ("--now", "--value"))
    for a in it:
        if a in ("-p", "--property"):
            props += next(it, "").split(",")
        elif a.startswith("--property="):
            props += a.split("=", 1)[1].split(",")
        else:
            names.append(a if a.endswith(".service") else f"{a}.service")
    if cmd == "is-system-running":
        print("running")
        return 0
    if cmd == "show-environment":
        print("HOME=" + os.environ.get("HOME", ""))
        return 0
    if cmd == "daemon-reload":
        return mgr.daemon_reload()
    if not names:
        return _fail(f"fake systemctl: {cmd} needs a unit name")
    rc = 0
    for name in names:
        if cmd == "enable":
            rc |= mgr.enable(name) or (mgr.start(name) if now else 0)
        elif cmd == "disable":
            rc |= mgr.disable(name) or (mgr.stop(name) if now else 0)
        elif cmd == "start":
            rc |= mgr.start(name)
        elif cmd == "stop":
            rc |= mgr.stop(name)
        elif cmd == "restart":
            rc |= mgr.stop(name) or mgr.start(name)
        elif cmd == "is-active":
            state_now = mgr.active_state(name)
            print(state_now)
            rc |= 0 if state_now == "active" else 3
        elif cmd == "is-enabled":
            on = (mgr.enabled / name).exists()
            print("enabled" if on else "disabled")
            rc |= 0 if on else 1
        elif cmd == "show":
            rc |= mgr.show(name, props, value_only)
        else:
            return _fail(f"fake systemctl: unsupported command {cmd!r}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
