"""``switchyard doctor``: look for each known fault and say how to fix it.

Every check is a pure function of what was read (file text, a mode, probe results) returning a
``Check``; ``run_doctor`` does the reading.  Only the LiteLLM check costs anything (one tiny cloud
request per cloud model), so the command asks before running it.  What the local server can take is
judged by :mod:`proxy.local_advice`, in the same words as the installer and ``switchyard status``.
"""

from __future__ import annotations

import hmac
import os
import re
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from proxy import local_advice
from proxy.capabilities import LocalCapabilities
from proxy.config import Config, ConfigError, LocalConfig, load_config
from proxy.host import http_probe, pidfile, procs, systemd
from proxy.host.envfile import parse_env_text, read_env_file
from proxy.host.http_probe import HttpResult
from proxy.ops.checks import Check, failed, from_finding, passed, skipped
from proxy.ops.context import base_url, decisions_path, env_file_for, host_paths, pidfile_path
from proxy.ops.status import (
    Facts,
    Listener,
    check_linger,
    check_local_model,
    known_pids,
    listener_facts,
    local_capabilities,
)

REQUIRED_ENV = ("SWITCHYARD_ROUTER_KEY", "SWITCHYARD_LITELLM_KEY")
THINKING_FIELDS = ("reasoning", "enable_thinking", "thinking", "extra inputs", "extra_forbidden")


# ---------------------------------------------------------------- config


def check_config_loads(path: Path, error: str | None) -> Check:
    name = "config loads"
    if error is None:
        return passed(name, str(path))
    fix = "run 'python -m installer' to create it" if "does not exist" in error else f"edit {path}"
    return failed(name, error, fix)


_LITERAL_HOME = re.compile(r"\$\{?HOME\}?|(?<![\w/])~(?=/|$|\")")


def check_literal_home(path: Path, text: str | None, home: str) -> Check:
    """A ``$HOME`` or ``~`` in a value is never expanded (TOML, systemd): the path ends up wrong."""
    name = "no literal $HOME or ~ in the config"
    if text is None:
        return skipped(name, "no config to read")
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        code = line
        if "=" in code and _LITERAL_HOME.search(code.split("=", 1)[1]):
            bad.append((number, code.split("=", 1)[0].strip()))
    if not bad:
        return passed(name)
    where = ", ".join(f"{key} (line {n})" for n, key in bad)
    return failed(name, f"{path}: {where} hold a literal $HOME or ~", f"write absolute paths instead, e.g. {home}/...")


def check_env_file(path: Path, mode: int | None, text: str | None, cfg: Config | None) -> Check:
    name = "env file"
    if mode is None or text is None:
        return failed(name, f"{path} is missing", "re-run the installer (python -m installer) to write it")
    if stat.S_IMODE(mode) & 0o077:
        return failed(
            name,
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); it holds secrets",
            f"chmod 600 {shlex.quote(str(path))}",
        )
    names = (cfg.listen.key_env, cfg.cloud.key_env) if cfg is not None else REQUIRED_ENV
    values = parse_env_text(text)
    missing = [n for n in names if not values.get(n)]
    if missing:
        return failed(name, f"{path} has no value for {', '.join(missing)}", "re-run the installer to write them")
    return passed(name, f"{path} (0600, {', '.join(names)} set)")


# ---------------------------------------------------------------- process and unit


def check_stale_pidfile(path: Path, pid: int | None, live: bool) -> Check:
    name = "pidfile"
    if pid is None:
        return passed(name, f"none at {path}" if not path.exists() else f"{path} holds no PID")
    if live:
        return passed(name, f"{path}: PID {pid} is a running Switchyard")
    return failed(
        name,
        f"stale: {path} names PID {pid}, but no running process holds its lock",
        f"rm {shlex.quote(str(path))}  (harmless: a stale pidfile never blocks 'switchyard start')",
    )


def check_unit_cleanup(unit: Path, text: str | None, pid_path: Path) -> Check:
    """The unit must remove a leftover pidfile before starting (a crash or reboot leaves one)."""
    name = "unit cleans up the pidfile"
    if text is None:
        return skipped(name, f"no systemd unit at {unit}")
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key in ("ExecStartPre", "ExecStopPost") and "rm" in value and str(pid_path) in value:
            return passed(name, line.strip())
    return failed(
        name,
        f"{unit} has no ExecStartPre= that removes {pid_path}",
        "re-run the installer (it writes ExecStartPre=-/bin/rm -f PIDFILE), then systemctl --user daemon-reload",
    )


def check_port_holder(port: int, listening: bool, listeners: list[Listener]) -> Check:
    name = "port"
    if not listening:
        return passed(name, f"{port} is free (the proxy is not running)")
    ours = [li for li in listeners if li.is_switchyard]
    if ours:
        return passed(name, f"{port} is held by Switchyard (PID {ours[0].pid})")
    who = f"{listeners[0].command} (PID {listeners[0].pid})" if listeners else "another user's program"
    return failed(
        name,
        f"{port} is held by {who}, not Switchyard",
        "stop that program, or choose another listen.port (re-run the installer)",
    )


@dataclass(frozen=True)
class LauncherKey:
    key: str | None
    source: str


# Stands in for `claude` when doctor runs the launcher: prints what the launcher would hand over.
_STUB = '#!/bin/sh\nprintf "%s\\n" "switchyard-doctor" "${ANTHROPIC_AUTH_TOKEN-}" "${ANTHROPIC_BASE_URL-}"\n'


def launcher_key(launcher: Path, timeout: float = 10.0) -> LauncherKey:
    """The router key the launcher sends, found by running it with a stand-in ``claude`` first on PATH.

    Running it is the only reading that cannot disagree with the launcher itself (however it gets
    the key: from the env file, written in, or from the environment).
    """
    with tempfile.TemporaryDirectory(prefix="switchyard-doctor-") as scratch:
        stub = Path(scratch) / "claude"
        stub.write_text(_STUB, encoding="ascii")
        stub.chmod(0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env["PATH"] = scratch + os.pathsep + env.get("PATH", "/usr/bin:/bin")
        try:
            proc = subprocess.run(["/bin/sh", str(launcher)], capture_output=True, text=True, env=env,
                                  timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            return LauncherKey(None, f"could not run it ({exc})")
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or not lines or lines[0] != "switchyard-doctor":
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return LauncherKey(None, f"not handed to claude ({why})")
    key = lines[1] if len(lines) > 1 else ""
    return LauncherKey(key or None, "as the launcher hands it to claude" if key else "empty when run")


def check_launcher_key(launcher: Path, found: LauncherKey | None, service_key: str | None, service_src: str) -> Check:
    name = "launcher key matches the service"
    if found is None:
        return skipped(name, f"no launcher at {launcher}")
    if not found.key:
        return failed(name, f"{launcher}: router key {found.source}", "re-run the installer to rewrite the launcher")
    if not service_key:
        return failed(name, f"the service's key is unknown ({service_src})", "re-run the installer")
    if hmac.compare_digest(found.key.encode(), service_key.encode()):
        return passed(name, f"{launcher} ({found.source}) and the service ({service_src}) agree")
    return failed(
        name,
        f"{launcher} sends a key ({found.source}) that differs from the service's ({service_src}): "
        "every request is refused with 401",
        "switchyard restart (the service re-reads the env file); if that is not enough, re-run the installer",
    )


# ---------------------------------------------------------------- the local server


def check_local_server(caps: LocalCapabilities, source: str = "") -> Check | None:
    """What the probe found and how (its notes), or None when it found nothing (a finding says so)."""
    if not caps.known:
        return None
    detail = caps.describe() + (f" ({source})" if source else "")
    return passed("local server", "".join([detail, *(f"\n    - {note}" for note in caps.notes)]))


def check_local_capabilities(caps: LocalCapabilities, local: LocalConfig) -> list[Check]:
    """One check per finding of :func:`proxy.local_advice.findings`: does a Claude Code request fit one
    local request's context (``local.context_tokens`` over the server's figure, ``local.output_reserve_tokens``
    kept for the answer), does the chat template take tools, and (Ollama) are long prompts cut silently."""
    found = local_advice.findings(caps, local_advice.reserve_for(local), local.context_tokens)
    return [from_finding(f) for f in found]


# ---------------------------------------------------------------- cloud and log


def check_litellm_thinking(results: Mapping[str, HttpResult] | None, url: str) -> Check:
    name = "LiteLLM accepts the thinking fields"
    if results is None:
        return skipped(name, "not checked (it sends a tiny cloud request; run with --yes to allow it)")
    rejecting: list[str] = []
    others: list[str] = []
    for model, r in results.items():
        if r.status is None:
            return failed(name, f"{url} does not answer: {r.error}", "start LiteLLM or fix cloud.base_url")
        if r.status == 200:
            continue
        message = r.message()
        if r.status == 400 and any(word in message.lower() for word in THINKING_FIELDS):
            rejecting.append(model)
            others.append(f"model {model}: its backend rejects the thinking fields (HTTP 400: {message})")
        else:
            others.append(f"{model}: HTTP {r.status}: {message}")
    if rejecting:
        return failed(
            name,
            "; ".join(others),
            f"in LiteLLM's config add to the litellm_params of {', '.join(rejecting)}: "
            "additional_drop_params: [reasoning, thinking, enable_thinking], then restart LiteLLM "
            "(re-running the installer patches it)",
        )
    if others:
        return failed(name, "; ".join(others), "check LiteLLM's log and config")
    return passed(name, f"{', '.join(results)} answered 200 to reasoning, thinking and enable_thinking")


@dataclass(frozen=True)
class LogProbe:
    configured: bool
    running: bool
    answered: int | None = None  # the proxy's HTTP status for GET /health
    grew: bool = False  # every decision the proxy made so far reached the file
    deleted_fd: bool = False  # the proxy writes to a log file that was deleted or moved away
    path: str = ""
    requests: int = 0
    written: int = 0
    failed: int = 0
    last_error: str | None = None


def check_log_growing(p: LogProbe) -> Check:
    name = "decision log grows"
    if not p.configured:
        return failed(
            name,
            "no decision log configured: stats and watch have nothing to read",
            'set [log] decisions = "/absolute/path/decisions.jsonl" in the config, then switchyard restart',
        )
    if not p.running:
        return skipped(name, "the proxy is not running")
    if p.deleted_fd:
        return failed(name, f"the proxy writes to a deleted copy of {p.path}", "switchyard restart")
    if p.answered != 200:
        return skipped(name, "the proxy's /health did not answer with its log counters")
    if p.grew:
        return passed(name, f"{p.written} of {p.requests} request(s) recorded in {p.path}")
    return failed(
        name,
        f"the log did not grow: {p.failed} record(s) could not be written ({p.last_error})",
        f"check that {Path(p.path).parent} is writable and not full, then switchyard restart",
    )


# ---------------------------------------------------------------- I/O edge


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def log_writable(counters: Mapping[str, object]) -> bool:
    """Is the proxy's decision log writable now, by the counters /health reported?

    "ok" is the current state (a disk that filled up once and has room again is fine); a proxy
    from before it reported only counters, so there any failure counts.
    """
    ok = counters.get("ok")
    if isinstance(ok, bool):
        return ok
    failed = counters.get("failed")
    return not (isinstance(failed, int) and failed > 0)


def _log_probe(cfg: Config, key: str, live: int | None) -> LogProbe:
    log = decisions_path(cfg)
    if log is None:
        return LogProbe(configured=False, running=live is not None)
    if live is None:
        return LogProbe(configured=True, running=False, path=str(log))
    deleted = False
    try:
        for fd in Path(f"/proc/{live}/fd").iterdir():
            target = str(fd.readlink())
            if target.startswith(str(log)) and target.endswith(" (deleted)"):
                deleted = True
    except OSError:
        pass
    # The proxy counts the records it wrote and failed to write (and fails to open a bad path at
    # start), so no request has to be sent to find out whether the log still grows.
    r = http_probe.request(f"{base_url(cfg)}/health", http_probe.router_headers(key), timeout=5.0)
    counters: dict[str, object] = {}
    requests = 0
    data = r.json() if r.status == 200 else None
    if isinstance(data, dict):
        d = data.get("decisions")
        counters = d if isinstance(d, dict) else {}
        req = data.get("requests")
        requests = req if isinstance(req, int) else 0
    written = counters.get("written")
    failures = counters.get("failed")
    last_error = counters.get("last_error")
    n_written = written if isinstance(written, int) else 0
    n_failed = failures if isinstance(failures, int) else 0
    grew = r.status == 200 and log_writable(counters) and (n_written == 0 or log.exists())
    return LogProbe(
        True,
        True,
        r.status,
        grew,
        deleted,
        str(log),
        requests=requests,
        written=n_written,
        failed=n_failed,
        last_error=last_error if isinstance(last_error, str) else ("log file missing" if n_written else None),
    )


def _service_key(cfg: Config, live: int | None, env_file: Path) -> tuple[str | None, str]:
    if live is not None:
        env = procs.environ(live)
        if env is not None:
            return env.get(cfg.listen.key_env), f"running PID {live}"
    unit_text = _read(host_paths().unit_file)
    if unit_text:
        m = re.search(r"^EnvironmentFile=-?(.+)$", unit_text, re.M)
        if m:
            unit_env = Path(m.group(1).strip().strip('"'))
            return read_env_file(unit_env).get(cfg.listen.key_env), f"unit's {unit_env}"
    return read_env_file(env_file).get(cfg.listen.key_env), str(env_file)


def run_doctor(config_path: Path, allow_cloud: bool) -> list[Check]:
    checks: list[Check] = []
    error: str | None = None
    cfg: Config | None = None
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        error = str(exc)
    checks.append(check_config_loads(config_path, error))
    checks.append(check_literal_home(config_path, _read(config_path), str(host_paths().home)))
    env_file = env_file_for(config_path)
    try:
        mode: int | None = env_file.stat().st_mode
    except OSError:
        mode = None
    checks.append(check_env_file(env_file, mode, _read(env_file), cfg))
    if cfg is None:
        checks.append(skipped("the rest", "needs a config that loads"))
        return checks
    pid_path = pidfile_path(cfg)
    pid = pidfile.read_pid(pid_path)
    listening, listeners = listener_facts(cfg.listen.port, known_pids(cfg))
    live = pidfile.live_pid(pid_path) or next((li.pid for li in listeners if li.is_switchyard), None)
    checks.append(check_stale_pidfile(pid_path, pid, pid is not None and pidfile.live_pid(pid_path) == pid))
    unit = host_paths().unit_file
    checks.append(check_unit_cleanup(unit, _read(unit), pid_path))
    checks.append(check_port_holder(cfg.listen.port, listening, listeners))
    launcher = host_paths().saved_launcher
    found = launcher_key(launcher) if launcher.is_file() else None
    service_key, service_src = _service_key(cfg, live, env_file)
    checks.append(check_launcher_key(launcher, found, service_key, service_src))
    local_key = cfg.local_key()
    local_url = cfg.local.base_url.rstrip("/")
    facts = Facts(
        local_url=local_url,
        local_model=cfg.local.model,
        local_models=http_probe.request(f"{local_url}/models", http_probe.bearer(local_key)),
    )
    checks.append(check_local_model(facts))
    health = (
        http_probe.request(f"{base_url(cfg)}/health", http_probe.router_headers(cfg.router_key()), timeout=3.0)
        if live is not None
        else None
    )
    caps, source = local_capabilities(cfg, health)
    server = check_local_server(caps, source)
    if server is not None:
        checks.append(server)
    checks.extend(check_local_capabilities(caps, cfg.local))
    thinking: dict[str, HttpResult] | None = None
    if allow_cloud:
        thinking = {
            model: http_probe.messages_probe(cfg.cloud.base_url, cfg.cloud_key(), model,
                                             timeout=min(cfg.cloud.timeout_s, 60.0))
            for model in dict.fromkeys((cfg.cloud.simple_model, cfg.cloud.complex_model))
        }
    checks.append(check_litellm_thinking(thinking, cfg.cloud.base_url))
    checks.append(check_linger(systemd.linger()))
    checks.append(check_log_growing(_log_probe(cfg, cfg.router_key(), live)))
    return checks
