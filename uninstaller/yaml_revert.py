"""Take Switchyard's edits back out of a LiteLLM YAML the user has changed since we patched it.

The installer records every edit as a ``YamlChange`` (see ``installer/litellm_yaml.py`` and the
journal docstring).  When the file is byte-for-byte what we wrote, the uninstaller simply restores
the backup; this module is for the other case, where the user's later edits must survive.  It works
on the ruamel round-trip document loaded by the installer's own loader (same indentation detection,
CRLF/BOM handling and faithful re-emission), and undoes each change only while the value is still
what we wrote: a key the user has since changed is theirs now and is left alone (and reported).

Removing a key is the inverse of the installer's ``_append``: the full-line comments ruamel keeps
with the last element (typically the comment introducing the next entry) were moved onto our new
keys, so they are moved back onto the element that precedes ours before our key is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken

from installer.litellm_yaml import (
    YamlFile,
    alias_slots,
    get_tok,
    is_block,
    own_keys_ordered,
    plain,
    set_tok,
    tail,
)


@dataclass
class RevertResult:
    """What happened to each recorded change (human-readable, one line each)."""

    undone: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.undone)


def _where(change: dict[str, Any]) -> str:
    loc = change.get("locator") or {}
    if loc.get("section") == "model_list":
        return f"model_list entry {loc.get('model_name')!r} ({loc.get('litellm_model')}) litellm_params"
    if loc.get("section") == "litellm_settings":
        return "litellm_settings"
    return "the top level"


def _entry_matches(item: Any, loc: dict[str, Any]) -> bool:
    if not isinstance(item, CommentedMap):
        return False
    lp = item.get("litellm_params")
    return (
        isinstance(lp, CommentedMap)
        and str(item.get("model_name", "")) == str(loc.get("model_name", ""))
        and str(lp.get("model", "")) == str(loc.get("litellm_model", ""))
    )


def find_container(doc: Any, change: dict[str, Any]) -> CommentedMap | None:
    """The mapping a change was made in, found again even if the user reordered or added entries."""
    loc = change.get("locator") or {}
    section = loc.get("section")
    if section == "/":
        return doc if isinstance(doc, CommentedMap) else None
    if section == "litellm_settings":
        s = doc.get("litellm_settings")
        return s if isinstance(s, CommentedMap) else None
    if section != "model_list":
        return None
    ml = doc.get("model_list")
    if not isinstance(ml, CommentedSeq):
        return None
    idx = loc.get("index")
    if isinstance(idx, int) and 0 <= idx < len(ml) and _entry_matches(ml[idx], loc):
        lp: CommentedMap = ml[idx]["litellm_params"]
        return lp
    candidates = [item["litellm_params"] for item in ml if _entry_matches(item, loc)]
    if not candidates:
        # The user changed the entry's model since: the same model_name is still the same entry when
        # only one entry has it.
        named = [item for item in ml if isinstance(item, CommentedMap)
                 and str(item.get("model_name", "")) == str(loc.get("model_name", ""))
                 and isinstance(item.get("litellm_params"), CommentedMap)]
        if len(named) == 1:
            candidates = [named[0]["litellm_params"]]
    # Several deployments may share a model name and model: prefer one still holding our key.
    key = change.get("key")
    for lp in candidates:
        if key in own_keys_ordered(lp):
            return lp
    return candidates[0] if candidates else None


def _pair_tail(node: Any, key: Any, aliases: set[tuple[int, Any]]) -> tuple[Any, Any, int]:
    """Where the comment following the element ``node[key]`` is kept (the deepest last scalar)."""
    value = node[key]
    if is_block(value) and (id(node), key) not in aliases:
        t = tail(value, aliases)
        if t is not None:
            return t
    return (node, key, 0 if isinstance(node, CommentedSeq) else 2)


def _following_lines(node: Any, key: Any, aliases: set[tuple[int, Any]]) -> str:
    """The full-line comments / blank lines after ``node[key]`` (its own end-of-line comment excluded)."""
    tok = get_tok(_pair_tail(node, key, aliases))
    if tok is None:
        return ""
    value = str(tok.value)
    nl = value.find("\n")
    return value[nl + 1 :] if nl >= 0 else ""


def _give_lines_to(node: Any, key: Any, rest: str, aliases: set[tuple[int, Any]]) -> None:
    if not rest:
        return
    t = _pair_tail(node, key, aliases)
    tok = get_tok(t)
    if tok is None:
        set_tok(t, CommentToken("\n" + rest, CommentMark(0), None))
    else:
        value = str(tok.value)
        tok.value = value + rest if value.endswith("\n") else value + "\n" + rest


def remove_key(doc: Any, mapping: CommentedMap, key: Any) -> None:
    aliases = alias_slots(doc)
    keys = own_keys_ordered(mapping)
    i = keys.index(key)
    rest = _following_lines(mapping, key, aliases)
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if i > 0:
        _give_lines_to(mapping, keys[i - 1], rest, aliases)


def remove_item(doc: Any, seq: CommentedSeq, index: int) -> None:
    aliases = alias_slots(doc)
    rest = _following_lines(seq, index, aliases)
    del seq[index]
    if index > 0:
        _give_lines_to(seq, index - 1, rest, aliases)


def _restore_value(old: Any) -> Any:
    if isinstance(old, list):
        seq = CommentedSeq(old)
        seq.fa.set_flow_style()
        return seq
    if isinstance(old, dict):
        m = CommentedMap()
        m.update(old)
        return m
    return old


def revert_changes(yf: YamlFile, changes: list[dict[str, Any]]) -> RevertResult:
    """Undo ``changes`` (as recorded in the journal) in ``yf.doc``, newest first."""
    res = RevertResult()
    doc = yf.doc
    for change in reversed(changes):
        key = change.get("key")
        action = change.get("action")
        what = f"{key} in {_where(change)}"
        container = find_container(doc, change)
        if container is None or key not in own_keys_ordered(container):
            res.already_gone.append(f"{what}: no longer in the file")
            continue
        current = plain(container[key])
        if action == "added":
            if current == change.get("value"):
                remove_key(doc, container, key)
                res.undone.append(f"removed {what}")
            else:
                res.kept.append(f"{what}: you changed it to {current!r} since; left as is")
        elif action == "section_added":
            wanted = change.get("value")
            if current == wanted:
                remove_key(doc, container, key)
                res.undone.append(f"removed the {key} section Switchyard added")
            elif isinstance(current, dict) and isinstance(wanted, dict):
                # The user added their own settings to the section we created: keep the section.
                section = container[key]
                for sub, val in wanted.items():
                    if sub in own_keys_ordered(section) and plain(section[sub]) == val:
                        remove_key(doc, section, sub)
                        res.undone.append(f"removed {sub} from {key} (the section itself holds your settings)")
            else:
                res.kept.append(f"{what}: you changed it since; left as is")
        elif action == "replaced":
            if current == change.get("new"):
                container[key] = _restore_value(change.get("old"))
                res.undone.append(f"put back {what} = {change.get('old')!r}")
            else:
                res.kept.append(f"{what}: you changed it to {current!r} since; left as is")
        elif action == "extended":
            seq = container[key]
            if not isinstance(seq, CommentedSeq):
                res.kept.append(f"{what}: no longer a list; left as is")
                continue
            gone: list[str] = []
            for item in reversed(change.get("added_items") or []):
                idx = next((i for i in range(len(seq) - 1, -1, -1) if str(seq[i]) == item), None)
                if idx is None:
                    gone.append(item)
                    continue
                remove_item(doc, seq, idx)
            if gone:
                res.already_gone.append(f"{what}: {', '.join(gone)} no longer listed")
            if len(gone) < len(change.get("added_items") or []):
                res.undone.append(f"removed Switchyard's items from {what}")
        else:
            res.kept.append(f"{what}: unknown journal action {action!r}; left as is")
    return res
