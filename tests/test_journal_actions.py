"""Journal actions as objects: each records, undoes and traces itself; old journals still uninstall."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from installer import journal_actions as ja
from installer.journal import Journal
from installer.rollback import rollback
from proxy.host.paths import Paths
from tests.conftest import UserPaths

REPO = Path(__file__).resolve().parents[1]
OLD_JOURNAL = REPO / "tests" / "data" / "journal-v1.json"
ORIGINAL_YAML = b"model_list:\n- model_name: cloud-simple\n  litellm_params:\n    model: anthropic/x\n"
PATCHED_YAML = ORIGINAL_YAML + b"    additional_drop_params: [reasoning]\n"
# The files the previous version's installer wrote for that journal (tests/data/journal-v1.json was
# written by its installer.journal.Journal), with the bytes it recorded.
OLD_FILES = {
    ".config/switchyard/env": b"SWITCHYARD_ROUTER_KEY=abc\n",
    ".config/switchyard/config.toml": b"[listen]\nport = 1\n",
    ".config/systemd/user/switchyard.service": b"[Service]\nExecStart=/bin/true\n",
    ".local/bin/claude-routed": b"#!/bin/sh\nexec claude\n",
    ".config/switchyard/answers.yml": b"port: 1\n",
    ".local/state/switchyard/proxy.log": b"log\n",
}


def test_every_action_round_trips_through_json() -> None:
    actions: list[ja.Action] = [
        ja.MakeDir("/d"), ja.CreateFile("/f"), ja.Overwrite("/f", "/b"), ja.BuildVenv("/v", None),
        ja.BuildVenv("/v", "/b/venv"),
        ja.RunCommand(["systemctl", "--user", "start", "u"], ["systemctl", "stop"], ["/l"]),
        ja.SpawnProxy(12, "/p.pid", ["/log"]), ja.RestartLiteLLM("docker restart litellm"),
    ]
    for a in actions:
        assert ja.from_json(json.loads(json.dumps(a.to_json()))) == a
    # The on-disk names of the previous version.
    assert actions[5].to_json() == {"op": "command", "argv": ["systemctl", "--user", "start", "u"],
                                    "undo": ["systemctl", "stop"], "created": ["/l"]}
    odd = ja.from_json({"op": "teleport", "where": "/x"})
    assert isinstance(odd, ja.UnknownAction) and odd.to_json() == {"op": "teleport", "where": "/x"}
    assert isinstance(ja.from_json({"op": "mkdir"}), ja.UnknownAction)  # a malformed entry never crashes


def test_rollback_walks_the_recorded_actions_in_reverse(tmp_path: Path) -> None:
    p = Paths.from_env()
    user = tmp_path / "user.txt"
    user.write_bytes(b"mine\n")
    j = Journal(p.journal_file, p.backups_dir)
    j.write_file(p.config_file, b"x = 1\n", 0o644, step="render", role="config")
    j.write_file(user, b"changed\n", 0o600, step="render", role="file")
    made = tmp_path / "made-by-command"
    made.write_text("x")
    j.record(ja.RunCommand(["true"], None, [str(made)]))
    kinds = [type(a) for a in j.actions]
    assert kinds[-1] is ja.RunCommand and ja.Overwrite in kinds and ja.MakeDir in kinds
    assert rollback(j) == []
    assert user.read_bytes() == b"mine\n" and not p.config_file.exists() and not made.exists()
    assert not p.journal_file.exists() and not p.state_dir.exists()


def _materialize_old_install(root: Path) -> dict[str, object]:
    text = OLD_JOURNAL.read_text(encoding="utf-8").replace("@ROOT@", str(root))
    state = json.loads(text)
    home = root / "home"
    for rel, data in OLD_FILES.items():
        f = home / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    modes = {str(k): int(v["mode"], 8) for k, v in state["files_created"].items()}
    for path, mode in modes.items():
        Path(path).chmod(mode)
    yaml = home / "litellm.yaml"
    yaml.write_bytes(PATCHED_YAML)
    backup = Path(state["files_modified"][str(yaml)]["backup"])
    backup.parent.mkdir(parents=True, exist_ok=True)
    backup.write_bytes(ORIGINAL_YAML)
    journal = Paths.from_env().journal_file
    journal.write_text(text, encoding="utf-8")
    return dict(state)


def test_a_journal_written_by_the_previous_version_still_uninstalls(user_paths: UserPaths) -> None:
    root = user_paths.home.parent
    state = _materialize_old_install(root)
    # Every action of the old journal is one this version knows.
    actions = ja.parse_all(state["runs"][0]["actions"])  # type: ignore[index]
    assert not any(isinstance(a, ja.UnknownAction) for a in actions)
    r = subprocess.run([sys.executable, str(REPO / "uninstall.py"), "--yes", "--no-color"], capture_output=True,
                       text=True, timeout=120, check=False, cwd="/")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Switchyard is uninstalled." in r.stdout
    home = user_paths.home
    for rel in OLD_FILES:
        if rel.endswith("proxy.log"):
            assert (home / rel).exists()  # logs are kept unless --purge
        else:
            assert not (home / rel).exists(), rel
    assert (home / "litellm.yaml").read_bytes() == ORIGINAL_YAML
