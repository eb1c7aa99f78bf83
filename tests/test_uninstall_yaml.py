"""Taking Switchyard's edits back out of a LiteLLM YAML (uninstaller/yaml_revert.py), on the installer's own
patch output: the realistic config corpus, and user edits made after the patch."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from installer.litellm_yaml import FilePatch, load_litellm_config, load_yaml_file, plan_patch, render
from tests.test_installer_support import CORPUS
from uninstaller.yaml_revert import revert_changes

PATCHABLE = ["anchors.yaml", "basic.yaml", "crlf.yaml", "flow_lists.yaml", "four_space.yaml", "multi_deploy.yaml",
             "wildcard.yaml", "include_main/config.yaml"]


def _copy(name: str, tmp_path: Path) -> Path:
    src = CORPUS / name
    if src.parent != CORPUS:
        shutil.copytree(src.parent, tmp_path / src.parent.name)
        return tmp_path / src.parent.name / src.name
    shutil.copy2(src, tmp_path / name)
    return tmp_path / name


def _patch_all(main: Path) -> list[FilePatch]:
    """Patch every entry whose litellm_params is not shared, and write the results (as the installer would)."""
    cfg = load_litellm_config(main)
    chosen = []
    for e in cfg.entries:
        lp = cfg.file_for(e.file).doc["model_list"][e.index].get("litellm_params")
        if lp is not None and len(cfg._params_owner.get(id(lp), [])) <= 1:
            chosen.append(e)
    patches = [p for p in plan_patch(cfg, chosen) if p.changed]
    assert patches
    for p in patches:
        p.path.write_bytes(p.patched)
    return patches


def _revert(path: Path, changes: list[dict[str, Any]]) -> tuple[bytes, Any]:
    yf = load_yaml_file(path)
    res = revert_changes(yf, changes)
    return render(yf), res


def _data(text: bytes) -> Any:
    return YAML(typ="safe", pure=True).load(text.decode().replace("\r\n", "\n"))


@pytest.mark.parametrize("name", PATCHABLE)
def test_reverting_an_unedited_patch_gives_back_the_original_bytes(name: str, tmp_path: Path) -> None:
    # The uninstaller restores the backup in this case; the ruamel path must be just as exact, since it
    # is what keeps every untouched line of an edited file byte-identical.
    for p in _patch_all(_copy(name, tmp_path)):
        out, res = _revert(p.path, [c.to_json() for c in p.changes])
        assert out == p.original, p.path
        assert res.undone and not res.kept and not res.already_gone


def test_user_edits_survive_and_only_switchyard_keys_go(tmp_path: Path) -> None:
    main = _copy("basic.yaml", tmp_path)
    [patch] = _patch_all(main)
    text = main.read_text()
    # The user, after the install: a new entry, a changed timeout, a new comment.
    text = text.replace("request_timeout: 600", "request_timeout: 900  # slower upstream now")
    text = text.replace("general_settings:", "# added by the user later\ngeneral_settings:")
    text = text.replace(
        "  - model_name: local-qwen",
        "  - model_name: user-added\n    litellm_params:\n      model: openai/user-model\n      drop_params: false\n\n"
        "  - model_name: local-qwen",
    )
    main.write_text(text)
    out, res = _revert(main, [c.to_json() for c in patch.changes])
    got = out.decode()
    assert "request_timeout: 900  # slower upstream now" in got
    assert "# added by the user later\ngeneral_settings:" in got
    assert "model_name: user-added" in got and "drop_params: false" in got  # the user's own drop_params stays
    assert "additional_drop_params" not in got
    assert got.count("drop_params") == 1
    # Apart from the user's three edits, the file is the original, byte for byte.
    expected = patch.original.decode()
    expected = expected.replace("request_timeout: 600", "request_timeout: 900  # slower upstream now")
    expected = expected.replace("general_settings:", "# added by the user later\ngeneral_settings:")
    expected = expected.replace(
        "  - model_name: local-qwen",
        "  - model_name: user-added\n    litellm_params:\n      model: openai/user-model\n      drop_params: false\n\n"
        "  - model_name: local-qwen",
    )
    assert got == expected
    assert not res.kept


def test_entries_found_again_after_the_user_reorders_them(tmp_path: Path) -> None:
    main = _copy("basic.yaml", tmp_path)
    [patch] = _patch_all(main)
    data = _data(main.read_bytes())
    data["model_list"].reverse()
    y = YAML(typ="safe", pure=True)
    with main.open("w") as fh:
        y.dump(data, fh)
    out, res = _revert(main, [c.to_json() for c in patch.changes])
    got = _data(out)
    want = _data(patch.original)
    assert list(reversed(got["model_list"])) == want["model_list"]
    assert got["litellm_settings"] == want["litellm_settings"]
    assert not res.kept


def test_a_value_the_user_changed_is_left_alone_and_reported(tmp_path: Path) -> None:
    main = _copy("basic.yaml", tmp_path)
    [patch] = _patch_all(main)
    text = main.read_text()
    # Their own decision now: keep dropping params globally, but as "false".
    head, sep, tail = text.rpartition("drop_params: true")
    assert sep and "model_name" not in head.rsplit("litellm_settings:", 1)[1]  # the global one, not an entry's
    main.write_text(head + "drop_params: false" + tail)
    out, res = _revert(main, [c.to_json() for c in patch.changes])
    assert res.kept and "you changed it to False" in res.kept[0]
    got = _data(out)
    assert got["litellm_settings"]["drop_params"] is False
    for entry in got["model_list"]:
        assert "additional_drop_params" not in entry["litellm_params"]


def test_replaced_and_extended_values_are_put_back(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    original = (
        "model_list:\n"
        "  - model_name: cloud-a\n"
        "    litellm_params:\n"
        "      model: openai/a\n"
        "      drop_params: false\n"
        "      additional_drop_params:\n"
        "        - logprobs\n"
        "        - thinking\n"
        "  # next\n"
        "  - model_name: cloud-b\n"
        "    litellm_params:\n"
        "      model: openai/b\n"
        "      additional_drop_params: logprobs\n"
        "litellm_settings:\n"
        "  drop_params: false\n"
    )
    cfg.write_text(original)
    patches = _patch_all(cfg)
    kinds = sorted({(c.key, c.action) for c in patches[0].changes})
    assert ("additional_drop_params", "extended") in kinds and ("drop_params", "replaced") in kinds
    assert ("additional_drop_params", "replaced") in kinds
    # A user edit forces the ruamel path: they moved cloud-b to another model.
    cfg.write_text(cfg.read_text().replace("model: openai/b", "model: openai/b2"))
    out, res = _revert(cfg, [c.to_json() for c in patches[0].changes])
    got = _data(out)
    want = _data(original.replace("model: openai/b", "model: openai/b2").encode())
    # The scalar that was a string before comes back as that string (its list form was Switchyard's).
    assert got["model_list"][1]["litellm_params"]["additional_drop_params"] in ("logprobs", ["logprobs"])
    got["model_list"][1]["litellm_params"]["additional_drop_params"] = "logprobs"
    assert got == want
    assert "  # next\n" in out.decode()
    assert not res.kept


def test_changes_already_removed_by_hand_are_reported_not_failed(tmp_path: Path) -> None:
    main = _copy("basic.yaml", tmp_path)
    [patch] = _patch_all(main)
    main.write_bytes(patch.original)
    out, res = _revert(main, [c.to_json() for c in patch.changes])
    assert out == patch.original
    assert not res.undone and res.already_gone
