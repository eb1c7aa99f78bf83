"""The LiteLLM YAML patcher against a corpus of realistic configs (tests/data/litellm_configs/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from installer.litellm_yaml import (
    DROP_FIELDS,
    FilePatch,
    LiteLLMConfigError,
    entries_for_models,
    load_litellm_config,
    plan_patch,
    removed_lines,
)
from tests.litellm_proc import QUIET_ENV

CORPUS = Path(__file__).resolve().parent / "data" / "litellm_configs"
CLOUD = ["cloud-fast", "cloud-smart"]
# Files whose patch must be purely additive (no line of the user's file changes).
ADDITIVE = ["basic.yaml", "anchors.yaml", "multi_deploy.yaml", "wildcard.yaml", "include_main/config.yaml"]
PATCHABLE = [*ADDITIVE, "crlf.yaml", "flow_lists.yaml", "four_space.yaml"]


def copy_corpus(tmp_path: Path, name: str) -> Path:
    src = CORPUS / name
    if src.parent != CORPUS:
        dest_dir = tmp_path / src.parent.name
        shutil.copytree(src.parent, dest_dir)
        return dest_dir / src.name
    dest = tmp_path / src.name
    shutil.copy2(src, dest)
    return dest


def apply(path: Path, models: list[str] = CLOUD) -> list[FilePatch]:
    cfg = load_litellm_config(path)
    patches = plan_patch(cfg, entries_for_models(cfg, models))
    for p in patches:
        if p.changed:
            p.path.write_bytes(p.patched)
    return patches


def pyyaml_like_load(path: Path) -> dict[str, Any]:
    # LiteLLM reads with PyYAML (YAML 1.1); ruamel's safe loader in 1.1 mode is the closest here.
    y = YAML(typ="safe", pure=True)
    y.version = (1, 1)
    data: dict[str, Any] = y.load(path.read_text(encoding="utf-8"))
    return data


def entries_by_name(path: Path) -> dict[str, list[dict[str, Any]]]:
    data = pyyaml_like_load(path)
    out: dict[str, list[dict[str, Any]]] = {}
    for inc in data.get("include", []) or []:
        for e in pyyaml_like_load(path.parent / inc).get("model_list", []):
            out.setdefault(e["model_name"], []).append(e["litellm_params"])
    for e in data.get("model_list", []) or []:
        out.setdefault(e["model_name"], []).append(e["litellm_params"])
    return out


@pytest.mark.parametrize("name", ADDITIVE)
def test_patch_only_adds_lines(tmp_path: Path, name: str) -> None:
    path = copy_corpus(tmp_path, name)
    patches = apply(path)
    assert any(p.changed for p in patches)
    for p in patches:
        assert removed_lines(p.original, p.patched) == [], p.diff()
        added = [ln for ln in p.diff().splitlines() if ln.startswith("+") and not ln.startswith("+++")]
        assert all(("drop_params" in ln) or ("litellm_settings" in ln) for ln in added), added


@pytest.mark.parametrize("name", PATCHABLE)
def test_patched_config_has_drop_list_and_rerun_is_noop(tmp_path: Path, name: str) -> None:
    path = copy_corpus(tmp_path, name)
    apply(path)
    by_name = entries_by_name(path)
    for model in CLOUD:
        params_list = by_name.get(model) or by_name["cloud-*"]
        for params in params_list:
            assert params["drop_params"] is True
            assert set(DROP_FIELDS) <= set(params["additional_drop_params"])
            assert len(params["additional_drop_params"]) == len(set(params["additional_drop_params"]))
    assert pyyaml_like_load(path)["litellm_settings"]["drop_params"] is True
    # Second run: nothing to change, byte for byte.
    before = {p: p.read_bytes() for p in path.parent.rglob("*.yaml")}
    again = apply(path)
    assert not any(p.changed for p in again)
    assert {p: p.read_bytes() for p in path.parent.rglob("*.yaml")} == before


def test_comments_quotes_and_env_refs_survive(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "basic.yaml")
    original = path.read_text()
    apply(path)
    text = path.read_text()
    for line in original.splitlines():
        assert line in text.splitlines()
    assert "api_key: os.environ/UPSTREAM_KEY   # never inline keys" in text
    assert 'model: "openai/gpt-smart"' in text
    # The comment that introduces the next entry stays right above it.
    lines = text.splitlines()
    assert lines[lines.index("  # The complex tier") + 1] == "  - model_name: cloud-smart"


def test_local_model_entry_untouched(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "basic.yaml")
    apply(path)
    local = entries_by_name(path)["local-qwen"][0]
    assert "drop_params" not in local and "additional_drop_params" not in local


def test_crlf_is_kept(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "crlf.yaml")
    apply(path)
    raw = path.read_bytes()
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert b"drop_params: true\r\n" in raw


def test_existing_list_merged_without_duplicates(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "flow_lists.yaml")
    patches = apply(path)
    smart = entries_by_name(path)["cloud-smart"][0]
    assert smart["additional_drop_params"] == ["enable_thinking", "logprobs", "reasoning", "thinking"]
    change = next(c for c in patches[0].changes if c.key == "additional_drop_params" and c.action == "extended")
    assert change.added_items == ["reasoning", "thinking"]
    # ruamel would rewrite the untouched flow mapping below; the splice keeps the user's line.
    assert '  fallbacks: [{"cloud-smart": ["cloud-fast"]}]' in path.read_text().splitlines()


def test_replaced_value_is_recorded(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "four_space.yaml")
    patches = apply(path)
    rec = [c.to_json() for c in patches[0].changes]
    assert {"action": "replaced", "old": False, "new": True} | {"key": "drop_params"} in [
        {k: v for k, v in c.items() if k in ("action", "old", "new", "key")} for c in rec
    ]
    assert any(c["action"] == "extended" and c["added_items"] == ["thinking", "enable_thinking"] for c in rec)


def test_merge_key_entries_get_own_keys_and_anchor_untouched(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "anchors.yaml")
    apply(path)
    data = pyyaml_like_load(path)
    assert "drop_params" not in data["x-common"]
    assert "drop_params" not in data["x-shared"]
    others = entries_by_name(path)
    assert "drop_params" not in others["other-a"][0]


def test_shared_alias_refused(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "shared_alias.yaml")
    cfg = load_litellm_config(path)
    with pytest.raises(LiteLLMConfigError, match="shares its litellm_params"):
        plan_patch(cfg, entries_for_models(cfg, ["cloud-fast"]))


def test_shared_alias_ok_when_all_sharers_chosen(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "shared_alias.yaml")
    apply(path, ["cloud-fast", "embeddings"])
    assert pyyaml_like_load(path)["x-shared"]["drop_params"] is True


def test_include_files_are_patched_separately(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "include_main/config.yaml")
    patches = apply(path)
    changed = {p.path.name for p in patches if p.changed}
    assert changed == {"config.yaml", "models_cloud.yaml"}


def test_broken_yaml_refused_with_line_number(tmp_path: Path) -> None:
    path = copy_corpus(tmp_path, "broken.yaml")
    with pytest.raises(LiteLLMConfigError, match=r"broken\.yaml:5: not valid YAML"):
        load_litellm_config(path)


def test_missing_include_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("include:\n  - nope.yaml\n")
    with pytest.raises(LiteLLMConfigError, match="does not exist"):
        load_litellm_config(path)


def test_patched_corpus_validates_in_litellm(tmp_path: Path, litellm_bin: str) -> None:
    """The real LiteLLM accepts the patched files (one process per file, ~10 s each: two, not all)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_"))}
    env.update(QUIET_ENV)
    env["UPSTREAM_KEY"] = "x"
    env["LITELLM_MASTER_KEY"] = "sk-x"
    for name in ("anchors.yaml", "include_main/config.yaml"):
        sub = tmp_path / name.replace("/", "_")
        sub.mkdir()
        path = copy_corpus(sub, name)
        apply(path)
        proc = subprocess.run(
            [litellm_bin, "--validate_config", "--config", str(path)],
            capture_output=True, text=True, env=env, cwd=str(path.parent), timeout=300, check=False,
        )
        assert proc.returncode == 0, f"{name}: {proc.stdout[-800:]}\n{proc.stderr[-800:]}"
