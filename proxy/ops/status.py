"""``switchyard status``: is the service up, stable, on its port, healthy, and are its two models reachable?

Facts are gathered at the edge (``gather``); each check is a pure function of them.  The port is
trusted over any banner: a healthy ``/health`` answer counts only when the process holding the
port is the Switchyard we expect.  What the local server can take is judged by
:mod:`proxy.local_advice`, in the same words as the installer and ``switchyard doctor``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from proxy import local_advice
from proxy.capabilities import LocalCapabilities, capabilities_from_json, probe_url
from proxy.config import Config, LocalConfig
from proxy.host import http_probe, pidfile, procs, systemd
from proxy.host.http_probe import HttpResult
from proxy.host.paths import UNIT_NAME
from proxy.host.systemd import UnitState
from proxy.ops.checks import Check, failed, passed, skipped
from proxy.ops.context import base_url, host_paths, pidfile_path


@dataclass(frozen=True)
class Listener:
    pid: int
    # The PID holds the pidfile's lock or is the unit's main PID: known to be this Switchyard.
    is_switchyard: bool
    command: str


@dataclass
class Facts:
    unit_file: bool = False
    unit: UnitState | None = None
    pidfile: Path | None = None
    pidfile_pid: int | None = None
    pidfile_live: int | None = None
    main_pids: tuple[int | None, int | None] = (None, None)
    port: int = 0
    listening: bool = False
    listeners: list[Listener] = field(default_factory=list)
    health: HttpResult | None = None
    key_env: str = "SWITCHYARD_ROUTER_KEY"
    key_set: bool = True
    local_url: str = ""
    local_model: str = ""
    local_models: HttpResult | None = None
    litellm_url: str = ""
    litellm: HttpResult | None = None
    linger: bool | None = None
    # What the local server can take, and where that came from (the proxy's /health, or a probe).
    local_caps: LocalCapabilities | None = None
    local_caps_source: str = ""
    local: LocalConfig = field(default_factory=LocalConfig)

    @property
    def systemd(self) -> bool:
        return self.unit_file and self.unit is not None and self.unit.manager


# ---------------------------------------------------------------- pure checks


def check_service(f: Facts) -> Check:
    name = "service"
    if f.systemd:
        assert f.unit is not None
        if f.unit.active == "active":
            return passed(name, f"systemd unit {UNIT_NAME} active ({f.unit.sub}), PID {f.unit.main_pid}")
        return failed(
            name,
            f"systemd unit {UNIT_NAME} is {f.unit.active or 'unknown'} ({f.unit.sub or f.unit.error})",
            f"switchyard start; if it fails again: journalctl --user -u {UNIT_NAME} -n 50, "
            f"and {host_paths().proxy_log}",
        )
    how = "no systemd user manager" if f.unit_file else "no systemd unit"
    if f.pidfile_live is not None:
        return passed(name, f"running detached, PID {f.pidfile_live} (pidfile {f.pidfile}; {how})")
    if f.pidfile_pid is not None:
        return failed(
            name,
            f"not running: pidfile {f.pidfile} names PID {f.pidfile_pid}, but no running process holds its lock",
            "switchyard start (a stale pidfile never blocks a start)",
        )
    return failed(name, f"not running ({how}, no pidfile at {f.pidfile})", "switchyard start")


def main_pid(f: Facts) -> int | None:
    if f.systemd:
        assert f.unit is not None
        return f.unit.main_pid or None
    return f.pidfile_live


def check_pid_stable(f: Facts) -> Check:
    name = "main PID stable"
    first, second = f.main_pids
    if first is None and second is None:
        return skipped(name, "not running")
    restarts = f.unit.restarts if f.systemd and f.unit is not None else 0
    if first != second:
        return failed(
            name,
            f"the main PID changed from {first} to {second} within a second: the proxy is restarting",
            f"look at the end of {host_paths().proxy_log} (or journalctl --user -u {UNIT_NAME})",
        )
    if restarts:
        return passed(name, f"PID {first}; systemd restarted it {restarts} time(s) since the unit started")
    return passed(name, f"PID {first}")


def check_port(f: Facts) -> Check:
    name = "port"
    where = f"127.0.0.1:{f.port}"
    expected = main_pid(f)
    if not f.listening:
        return failed(name, f"nothing listens on {where}", "switchyard start; then switchyard status")
    if not f.listeners:
        return failed(
            name,
            f"{where} is held by a process this user cannot see (another user's program)",
            "stop that program, or choose another listen.port in the config (re-run the installer)",
        )
    ours = [li for li in f.listeners if li.is_switchyard]
    if expected is not None and any(li.pid == expected for li in f.listeners):
        return passed(name, f"PID {expected} listens on {where}")
    if ours and expected is None:
        return failed(
            name,
            f"{where} is held by a Switchyard (PID {ours[0].pid}) that the service does not know",
            f"kill {ours[0].pid}; then switchyard start",
        )
    other = f.listeners[0]
    what = "another Switchyard" if other.is_switchyard else f"another program ({other.command})"
    return failed(
        name,
        f"{where} is held by {what}, PID {other.pid}, not by the service's PID {expected}",
        "stop that program (or choose another listen.port and re-run the installer), then switchyard restart",
    )


def check_health(f: Facts) -> Check:
    name = "/health"
    h = f.health
    if h is None:
        return skipped(name, "not probed")
    if h.status is None:
        return failed(name, f"no answer: {h.error}", "switchyard start; then switchyard status")
    if h.status == 401 and not f.key_set:
        return failed(
            name,
            f"refused (401): {f.key_env} is not set here, nor in the env file",
            "re-run the installer, or add the key to the env file",
        )
    if h.status == 401:
        return failed(
            name,
            "the router key was refused (401)",
            "the running proxy has another key than the env file: switchyard restart",
        )
    data = h.json()
    if h.status != 200 or not isinstance(data, dict) or data.get("status") != "ok":
        return failed(name, f"HTTP {h.status}, not a Switchyard health answer", "switchyard doctor")
    if "pid" not in data:
        # Without a key /health answers liveness only (the service is up, but nothing more is known).
        return failed(
            name,
            f"up (version {data.get('version')}), but {f.key_env} is not set here, nor in the env file: no detail",
            "re-run the installer, or add the key to the env file",
        )
    pids = {li.pid for li in f.listeners}
    if pids and data.get("pid") not in pids:
        return failed(
            name,
            f"the answer claims PID {data.get('pid')}, but the port is held by PID {sorted(pids)}",
            "switchyard doctor",
        )
    local = "up" if data.get("local_up") else "DOWN"
    return passed(name, f"version {data.get('version')}, up {float(data.get('uptime_s') or 0):.0f} s, local {local}")


def model_ids(result: HttpResult) -> list[str]:
    return http_probe.model_ids(result.json()) or []


def check_local_model(f: Facts) -> Check:
    name = "local model"
    r = f.local_models
    if r is None:
        return skipped(name, "not probed")
    if r.status is None:
        return failed(
            name,
            f"local server {f.local_url} does not answer: {r.error}",
            "start your local model server (LM Studio, Ollama, vLLM, llama.cpp) or fix local.base_url",
        )
    if r.status != 200:
        return failed(name, f"{f.local_url}/models answered HTTP {r.status}", "check the local server's logs")
    ids = model_ids(r)
    if f.local_model in ids:
        return passed(name, f"{f.local_model} available at {f.local_url}")
    have = ", ".join(ids[:6]) or "none"
    return failed(
        name,
        f"{f.local_model} is not loaded at {f.local_url} (it has: {have})",
        f"load it (LM Studio: lms load {f.local_model}; Ollama: ollama pull {f.local_model}) "
        "or set local.model in the config to one it has",
    )


def check_local_server(f: Facts) -> Check:
    """What the local server can take: one line, failed with the fixes when Claude Code's requests cannot
    be answered locally (every finding of :func:`proxy.local_advice.findings`, in its own words)."""
    name = "local server"
    caps = f.local_caps
    if caps is None:
        return skipped(name, "not probed")
    found = local_advice.findings(caps, local_advice.reserve_for(f.local), f.local.context_tokens)
    problems = [x for x in found if x.state == local_advice.PROBLEM]
    unknown = [x for x in found if x.state == local_advice.UNKNOWN]
    summary = caps.describe() + (f" ({f.local_caps_source})" if f.local_caps_source else "")
    if problems:
        return failed(
            name,
            "; ".join([summary, *(x.detail for x in problems)]),
            "\n    fix: ".join(dict.fromkeys(x.fix for x in problems)),  # one line per distinct fix
        )
    if not caps.known:
        return skipped(name, "; ".join(x.detail + (f"; {x.fix}" if x.fix else "") for x in unknown))
    return passed(name, "; ".join([summary, *(x.detail for x in unknown)]))


def check_litellm(f: Facts) -> Check:
    name = "LiteLLM"
    r = f.litellm
    if r is None:
        return skipped(name, "not probed")
    if r.status == 200:
        return passed(name, f"alive at {f.litellm_url}")
    detail = f"no answer: {r.error}" if r.status is None else f"/health/liveliness answered HTTP {r.status}"
    return failed(name, f"{f.litellm_url}: {detail}", "start your LiteLLM proxy, or fix cloud.base_url in the config")


def check_linger(value: bool | None) -> Check:
    name = "lingering"
    if value is None:
        return skipped(name, "unknown (loginctl unavailable or no login manager)")
    if value:
        return passed(name, "on: the service starts at boot, without a login")
    return failed(
        name, "off: the service stops when you log out and does not start at boot", "loginctl enable-linger $USER"
    )


STATUS_CHECKS: tuple[Callable[[Facts], Check], ...] = (
    check_service,
    check_pid_stable,
    check_port,
    check_health,
    check_local_model,
    check_local_server,
    check_litellm,
    lambda f: check_linger(f.linger),
)


# ---------------------------------------------------------------- I/O edge


def known_pids(cfg: Config) -> set[int]:
    """The PIDs proven to be this Switchyard: the pidfile's lock holder and the unit's main PID."""
    known = {pidfile.live_pid(pidfile_path(cfg))}
    if host_paths().unit_file.exists():
        known.add(systemd.unit_state().main_pid or None)
    return {p for p in known if p}


def listener_facts(port: int, known: set[int]) -> tuple[bool, list[Listener]]:
    listening, pids = procs.listeners(port)
    return listening, [Listener(p, p in known, procs.describe(p)) for p in pids]


FROM_PROXY = "as the running proxy sees it"
PROBED = "probed directly"


def local_capabilities(cfg: Config, health: HttpResult | None, timeout: float = 3.0) -> tuple[LocalCapabilities, str]:
    """What the local server can take, and from where: the running proxy's ``/health`` ``"local"`` (what its
    routing goes by), else a probe of the server itself (no proxy running, one that predates the report,
    or one that could not find out).  The probe is bounded and never raises."""
    data = health.json() if health is not None and health.status == 200 else None
    if isinstance(data, dict):
        reported = capabilities_from_json(data.get("local"))
        if reported.known:
            return reported, FROM_PROXY
    probed = asyncio.run(probe_url(cfg.local.base_url, cfg.local.model, cfg.local_key(), timeout_s=timeout))
    return probed, PROBED


def gather(cfg: Config, key: str, sample_interval: float = 0.5, timeout: float = 3.0) -> Facts:
    f = Facts(port=cfg.listen.port)
    f.unit_file = host_paths().unit_file.exists()
    f.unit = systemd.unit_state() if f.unit_file else None
    f.pidfile = pidfile_path(cfg)
    f.pidfile_pid = pidfile.read_pid(f.pidfile)
    f.pidfile_live = pidfile.live_pid(f.pidfile)
    first = main_pid(f)
    if first is not None:
        time.sleep(sample_interval)
        if f.systemd:
            f.unit = systemd.unit_state()
        else:
            f.pidfile_live = pidfile.live_pid(f.pidfile)
    f.main_pids = (first, main_pid(f))
    known = {p for p in (f.pidfile_live, f.unit.main_pid if f.unit else None) if p}
    f.listening, f.listeners = listener_facts(cfg.listen.port, known)
    f.health = http_probe.request(f"{base_url(cfg)}/health", http_probe.router_headers(key), timeout)
    f.key_env, f.key_set = cfg.listen.key_env, bool(key)
    f.local_url = cfg.local.base_url.rstrip("/")
    f.local_model = cfg.local.model
    local_key = cfg.local_key()
    f.local_models = http_probe.request(f"{f.local_url}/models", http_probe.bearer(local_key), timeout)
    f.local_caps, f.local_caps_source = local_capabilities(cfg, f.health, timeout)
    f.local = cfg.local
    f.litellm_url = cfg.cloud.base_url.rstrip("/")
    f.litellm = http_probe.request(f"{f.litellm_url}/health/liveliness", None, timeout)
    f.linger = systemd.linger()
    return f


def run_status(cfg: Config, key: str, sample_interval: float = 0.5) -> list[Check]:
    facts = gather(cfg, key, sample_interval)
    return [check(facts) for check in STATUS_CHECKS]
