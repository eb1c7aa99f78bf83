"""Round-trip patcher for the LiteLLM proxy config (YAML).

What it adds, per chosen ``model_list`` entry, inside ``litellm_params``::

    drop_params: true
    additional_drop_params: ["reasoning", "thinking", "enable_thinking"]   # merged, no duplicates

and ``litellm_settings.drop_params: true`` as a second line of defence (LiteLLM ignores a global
``additional_drop_params``, so the per-entry list is the part that matters).

The user's file must come back with only those lines added: ruamel.yaml round-trip keeps comments,
key order and quotes, but indentation is one global setting, so the file's own indentation is found
by trial (the combination that re-emits the untouched document byte for byte).  CRLF files are
converted for the parser and back on output.  Comments that ruamel attaches to the last key of a
mapping (often the comment introducing the *next* entry) are moved so new keys land above them.

Refusals (each one line): broken YAML (with the line number), an ``include:`` that is missing or
broken, a chosen entry whose ``litellm_params`` is an alias (``*anchor``) shared with an entry that
was not chosen, and a file this module cannot re-emit faithfully.
"""

from __future__ import annotations

import difflib
import fnmatch
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

DROP_FIELDS: tuple[str, ...] = ("reasoning", "thinking", "enable_thinking")


class LiteLLMConfigError(Exception):
    """The LiteLLM config cannot be used or patched safely; one line saying why and what to do."""


@dataclass(frozen=True)
class Indent:
    mapping: int
    sequence: int
    offset: int


@dataclass
class YamlFile:
    path: Path
    original: bytes
    crlf: bool
    bom: bool
    explicit_start: bool
    indent: Indent
    doc: Any
    # The untouched document as ruamel re-emits it with ``indent`` (equal to the file when exact).
    base_text: str


@dataclass(frozen=True)
class Entry:
    """One ``model_list`` item, wherever it lives (the main file or an included one)."""

    file: Path
    index: int
    model_name: str
    litellm_model: str
    api_base: str

    def locator(self) -> dict[str, Any]:
        return {
            "section": "model_list",
            "index": self.index,
            "model_name": self.model_name,
            "litellm_model": self.litellm_model,
        }

    def describe(self) -> str:
        where = f"{self.file.name} entry #{self.index + 1}"
        return f"{self.model_name} ({self.litellm_model or '?'}; {where})"


@dataclass
class YamlChange:
    """One edit we made, precise enough for the uninstaller to take back only ours.

    action: ``added`` (key did not exist; ``value`` is what we wrote), ``replaced`` (``old`` ->
    ``new``), ``extended`` (list existed; ``added_items`` appended at its end), ``section_added``
    (a whole top-level mapping ``key`` created holding ``value``).
    """

    file: str
    locator: dict[str, Any]
    key: str
    action: str
    value: Any = None
    old: Any = None
    new: Any = None
    added_items: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": self.file, "locator": self.locator, "key": self.key, "action": self.action}
        if self.action in ("added", "section_added"):
            out["value"] = self.value
        elif self.action == "replaced":
            out["old"] = self.old
            out["new"] = self.new
        elif self.action == "extended":
            out["added_items"] = list(self.added_items)
        return out


@dataclass
class FilePatch:
    path: Path
    original: bytes
    patched: bytes
    changes: list[YamlChange]

    @property
    def changed(self) -> bool:
        return self.original != self.patched

    def diff(self) -> str:
        return unified_diff(self.path, self.original, self.patched)


@dataclass
class LiteLLMConfig:
    main: YamlFile
    files: list[YamlFile]
    entries: list[Entry]
    # id(litellm_params mapping) -> entries sharing it (several when an alias is reused).
    _params_owner: dict[int, list[Entry]] = field(default_factory=dict)

    def model_names(self) -> list[str]:
        seen: list[str] = []
        for e in self.entries:
            if e.model_name not in seen:
                seen.append(e.model_name)
        return seen

    def file_for(self, path: Path) -> YamlFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(str(path))


def unified_diff(path: Path, before: bytes, after: bytes) -> str:
    a = before.decode("utf-8", "replace").splitlines(keepends=True)
    b = after.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=f"{path} (now)", tofile=f"{path} (after)"))


# ---------------------------------------------------------------------------------------------
# loading


def _yaml(indent: Indent, explicit_start: bool) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16
    y.indent(mapping=indent.mapping, sequence=indent.sequence, offset=indent.offset)
    y.explicit_start = explicit_start
    return y


def _indent_candidates() -> list[Indent]:
    out = [Indent(2, 4, 2), Indent(2, 2, 0), Indent(4, 4, 2), Indent(4, 6, 4), Indent(4, 4, 0), Indent(4, 2, 0)]
    for m in (2, 3, 4):
        for s in range(2, 9):
            for o in range(s - 1):
                cand = Indent(m, s, o)
                if cand not in out:
                    out.append(cand)
    return out


def _dump(y: YAML, doc: Any) -> str:
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def _has_explicit_start(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        return s == "---" or s.startswith("--- ")
    return False


def _decode(path: Path, raw: bytes) -> tuple[str, bool, bool]:
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw[3:].decode("utf-8") if bom else raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LiteLLMConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 and retry") from None
    crlf = "\r\n" in text
    if crlf:
        text = text.replace("\r\n", "\n")
    return text, crlf, bom


def _encode(text: str, crlf: bool, bom: bool) -> bytes:
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def load_yaml_file(path: Path) -> YamlFile:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LiteLLMConfigError(
            f"LiteLLM config {path} does not exist; give the path of the file LiteLLM runs with"
        ) from None
    except OSError as exc:
        raise LiteLLMConfigError(f"cannot read LiteLLM config {path}: {exc.strerror}") from None
    text, crlf, bom = _decode(path, raw)
    explicit = _has_explicit_start(text)
    try:
        doc = _yaml(Indent(2, 4, 2), explicit).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = (exc.problem or exc.context or "syntax error").strip()
        raise LiteLLMConfigError(f"{path}{line}: not valid YAML ({what}); fix that line and retry") from None
    except YAMLError as exc:
        raise LiteLLMConfigError(f"{path}: not valid YAML ({exc}); fix it and retry") from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise LiteLLMConfigError(f"{path}: the top level must be a mapping (model_list:, litellm_settings:, ...)")
    indent, base_text = _detect_indent(doc, text, explicit)
    return YamlFile(
        path=path, original=raw, crlf=crlf, bom=bom, explicit_start=explicit, indent=indent, doc=doc,
        base_text=base_text,
    )


def _detect_indent(doc: Any, text: str, explicit: bool) -> tuple[Indent, str]:
    """The emitter indentation that reproduces the file, or failing that the closest one.

    Round-trip loading does not depend on the emitter settings, so one parse serves every trial.
    """
    best: tuple[int, Indent, str] | None = None
    for cand in _indent_candidates():
        out = _dump(_yaml(cand, explicit), doc)
        if out == text:
            return cand, out
        n = len(_changed_lines(text, out))
        if best is None or n < best[0]:
            best = (n, cand, out)
    assert best is not None
    return best[1], best[2]


def _changed_lines(a: str, b: str) -> list[int]:
    sm = difflib.SequenceMatcher(a=a.splitlines(), b=b.splitlines(), autojunk=False)
    return [i for t, i1, i2, *_ in sm.get_opcodes() if t != "equal" for i in range(i1, max(i2, i1 + 1))]


def load_litellm_config(path: Path) -> LiteLLMConfig:
    path = path.absolute()
    main = load_yaml_file(path)
    files = [main]
    entries: list[Entry] = []
    owners: dict[int, list[Entry]] = {}

    def collect(yf: YamlFile) -> None:
        ml = yf.doc.get("model_list")
        if ml is None:
            return
        if not isinstance(ml, CommentedSeq):
            raise LiteLLMConfigError(f"{yf.path}: model_list must be a list of entries")
        for i, item in enumerate(ml):
            if not isinstance(item, CommentedMap):
                raise LiteLLMConfigError(f"{yf.path}: model_list entry #{i + 1} is not a mapping")
            lp = item.get("litellm_params")
            lp_map = lp if isinstance(lp, CommentedMap) else None
            entry = Entry(
                file=yf.path,
                index=i,
                model_name=str(item.get("model_name", "")),
                litellm_model=str(lp_map.get("model", "")) if lp_map is not None else "",
                api_base=str(lp_map.get("api_base", "")) if lp_map is not None else "",
            )
            entries.append(entry)
            if lp_map is not None:
                owners.setdefault(id(lp_map), []).append(entry)

    collect(main)
    includes = main.doc.get("include")
    if includes is not None:
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list):
            raise LiteLLMConfigError(f"{path}: include: must be a list of file names")
        for inc in includes:
            inc_path = Path(str(inc))
            if not inc_path.is_absolute():
                # LiteLLM resolves includes against the main config's directory.
                inc_path = path.parent / inc_path
            if not inc_path.exists():
                raise LiteLLMConfigError(f"{path}: include {inc!r} points to {inc_path}, which does not exist")
            yf = load_yaml_file(inc_path)
            files.append(yf)
            collect(yf)
    return LiteLLMConfig(main=main, files=files, entries=entries, _params_owner=owners)


# ---------------------------------------------------------------------------------------------
# choosing entries


def entries_for_models(cfg: LiteLLMConfig, model_names: list[str], exclude_api_base: str = "") -> list[Entry]:
    """The entries behind the given public model names (exact match first, else wildcard entries)."""
    chosen: list[Entry] = []
    for name in model_names:
        exact = [e for e in cfg.entries if e.model_name == name]
        found = exact or [e for e in cfg.entries if "*" in e.model_name and fnmatch.fnmatchcase(name, e.model_name)]
        for e in found:
            if exclude_api_base and _same_server(e.api_base, exclude_api_base):
                continue
            if e not in chosen:
                chosen.append(e)
    return chosen


def _same_server(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u.strip().rstrip("/")
        if u.endswith("/v1"):
            u = u[:-3]
        return u.replace("localhost", "127.0.0.1")

    return bool(a) and norm(a) == norm(b)


# ---------------------------------------------------------------------------------------------
# patching
#
# The comment-token helpers below (is_block, alias_slots, own_keys_ordered, tail, get_tok, set_tok,
# plain) are public: uninstaller/yaml_revert.py uses them to take our keys back out the same way.


def is_block(v: Any) -> bool:
    return isinstance(v, CommentedMap | CommentedSeq) and len(v) > 0 and not v.fa.flow_style()


def alias_slots(doc: Any) -> set[tuple[int, Any]]:
    """(id(parent), key) of every place where a collection appears as an ``*alias``.

    The first appearance in document order is the anchor's definition; later ones are aliases,
    whose trailing comments belong to the definition site, not to the alias.
    """
    seen: set[int] = set()
    slots: set[tuple[int, Any]] = set()

    def walk(node: Any) -> None:
        pairs: list[tuple[Any, Any]]
        if isinstance(node, CommentedMap):
            pairs = [(k, node[k]) for k in own_keys_ordered(node)]
        elif isinstance(node, CommentedSeq):
            pairs = list(enumerate(node))
        else:
            return
        for k, v in pairs:
            if isinstance(v, CommentedMap | CommentedSeq):
                if id(v) in seen:
                    slots.add((id(node), k))
                    continue
                seen.add(id(v))
                walk(v)

    walk(doc)
    return slots


def own_keys_ordered(m: CommentedMap) -> list[Any]:
    own = _own_keys(m)
    return [k for k in m if k in own]


def tail(node: Any, aliases: set[tuple[int, Any]] | None = None) -> tuple[Any, Any, int] | None:
    """Where ruamel keeps the comment that follows the last scalar of ``node``."""
    if isinstance(node, CommentedMap):
        keys = own_keys_ordered(node)
        if not keys:
            return None
        k = keys[-1]
        if is_block(node[k]) and (aliases is None or (id(node), k) not in aliases):
            return tail(node[k], aliases)
        return (node, k, 2)
    if isinstance(node, CommentedSeq):
        if not node:
            return None
        i = len(node) - 1
        if is_block(node[i]) and (aliases is None or (id(node), i) not in aliases):
            return tail(node[i], aliases)
        return (node, i, 0)
    return None


def get_tok(t: tuple[Any, Any, int]) -> CommentToken | None:
    node, k, slot = t
    e = node.ca.items.get(k)
    if not e:
        return None
    tok: CommentToken | None = e[slot]
    return tok


def set_tok(t: tuple[Any, Any, int], tok: CommentToken | None) -> None:
    node, k, slot = t
    e = node.ca.items.setdefault(k, [None, None, None, None])
    e[slot] = tok
    v = node[k]
    # A flow collection keeps a second reference to its trailing comment.
    if tok is None and isinstance(v, CommentedMap | CommentedSeq) and v.ca.comment:
        v.ca.comment[0] = None


def _append(container: Any, items: list[tuple[Any, Any]], doc: Any) -> None:
    """Append to a mapping (key, value) or a sequence (None, value) below any trailing comment.

    ruamel stores full-line comments that follow the last element (typically the comment above the
    next entry, or a blank line) with that element; appending naively would put them above our new
    lines.  Keep the end-of-line part where it was and move the rest after the new last element.
    """
    aliases = alias_slots(doc)
    before = tail(container, aliases)
    tok = get_tok(before) if before is not None else None
    rest = ""
    if before is not None and tok is not None:
        value = str(tok.value)
        if value.startswith("#"):
            nl = value.find("\n")
            if nl >= 0:
                rest = value[nl + 1 :]
                tok.value = value[: nl + 1]
        else:
            rest = value[1:] if value.startswith("\n") else value
            set_tok(before, None)
    for k, v in items:
        if isinstance(container, CommentedMap):
            container[k] = v
        else:
            container.append(v)
    if rest:
        after = tail(container, aliases)
        if after is not None:
            set_tok(after, CommentToken("\n" + rest, CommentMark(0), None))


def plain(v: Any) -> Any:
    if isinstance(v, CommentedSeq | list):
        return [plain(x) for x in v]
    if isinstance(v, CommentedMap | dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, bool | int | float) or v is None:
        return v
    return str(v)


def _own_keys(m: CommentedMap) -> set[Any]:
    # Keys written in this mapping itself, not pulled in with a `<<: *anchor` merge.
    return set(m._ok) if hasattr(m, "_ok") else set(m.keys())


def _patch_params(yf: YamlFile, lp: CommentedMap, locator: dict[str, Any]) -> list[YamlChange]:
    changes: list[YamlChange] = []
    new_items: list[tuple[Any, Any]] = []
    own = _own_keys(lp)
    f = str(yf.path)
    if "drop_params" in own:
        old = lp["drop_params"]
        if old is not True:
            lp["drop_params"] = True
            changes.append(YamlChange(f, locator, "drop_params", "replaced", old=plain(old), new=True))
    else:
        new_items.append(("drop_params", True))
        changes.append(YamlChange(f, locator, "drop_params", "added", value=True))
    existing = lp.get("additional_drop_params")
    if "additional_drop_params" in own and isinstance(existing, CommentedSeq):
        have = {str(x) for x in existing}
        missing = [x for x in DROP_FIELDS if x not in have]
        if missing:
            quoted = any(isinstance(x, DoubleQuotedScalarString) for x in existing)
            _append(existing, [(None, DoubleQuotedScalarString(x) if quoted else x) for x in missing], yf.doc)
            changes.append(YamlChange(f, locator, "additional_drop_params", "extended", added_items=missing))
    elif "additional_drop_params" in own:
        old = lp["additional_drop_params"]
        base = [str(x) for x in old] if isinstance(old, list) else ([str(old)] if old else [])
        merged = base + [x for x in DROP_FIELDS if x not in base]
        lp["additional_drop_params"] = _flow_list(merged)
        changes.append(YamlChange(f, locator, "additional_drop_params", "replaced", old=plain(old), new=merged))
    else:
        # Inherited through a merge key, or absent: an own key overrides for this entry only.
        base = [str(x) for x in existing] if isinstance(existing, list) else []
        merged = base + [x for x in DROP_FIELDS if x not in base]
        new_items.append(("additional_drop_params", _flow_list(merged)))
        changes.append(YamlChange(f, locator, "additional_drop_params", "added", value=merged))
    if new_items:
        _append(lp, new_items, yf.doc)
    return changes


def _flow_list(items: list[str]) -> CommentedSeq:
    seq = CommentedSeq([DoubleQuotedScalarString(x) for x in items])
    seq.fa.set_flow_style()
    return seq


def _patch_settings(yf: YamlFile) -> list[YamlChange]:
    doc = yf.doc
    f = str(yf.path)
    loc = {"section": "litellm_settings"}
    settings = doc.get("litellm_settings")
    if settings is None and "litellm_settings" not in doc:
        new = CommentedMap()
        new["drop_params"] = True
        _append(doc, [("litellm_settings", new)], doc)
        return [YamlChange(f, {"section": "/"}, "litellm_settings", "section_added", value={"drop_params": True})]
    if settings is None:
        # `litellm_settings:` with nothing under it.
        new = CommentedMap()
        new["drop_params"] = True
        doc["litellm_settings"] = new
        return [YamlChange(f, {"section": "/"}, "litellm_settings", "replaced", old=None, new={"drop_params": True})]
    if not isinstance(settings, CommentedMap):
        raise LiteLLMConfigError(f"{yf.path}: litellm_settings must be a mapping")
    if "drop_params" in _own_keys(settings):
        if settings["drop_params"] is True:
            return []
        old = plain(settings["drop_params"])
        settings["drop_params"] = True
        return [YamlChange(f, loc, "drop_params", "replaced", old=old, new=True)]
    _append(settings, [("drop_params", True)], doc)
    return [YamlChange(f, loc, "drop_params", "added", value=True)]


def _splice(original: str, base: str, patched: str) -> str | None:
    """Apply the edits between ``base`` and ``patched`` onto ``original``.

    ``base`` is ruamel's re-emission of the untouched file.  When that differs from the file (odd
    indentation, a ruamel flow-style quirk), taking ruamel's whole output would reformat the user's
    lines; instead only our edits are carried over, at the matching places of the original.  None
    when an edit touches a line ruamel would have re-emitted differently.
    """
    o = original.splitlines(keepends=True)
    b = base.splitlines(keepends=True)
    p = patched.splitlines(keepends=True)
    bmap: dict[int, int] = {}
    for tag, i1, i2, j1, _j2 in difflib.SequenceMatcher(a=b, b=o, autojunk=False).get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                bmap[i1 + k] = j1 + k
    edits: list[tuple[int, int, list[str]]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b, b=p, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "insert":
            if i1 == 0:
                pos = 0
            elif (i1 - 1) in bmap:
                pos = bmap[i1 - 1] + 1
            elif i1 == len(b):
                pos = len(o)
            elif i1 in bmap:
                pos = bmap[i1]
            else:
                return None
            edits.append((pos, pos, p[j1:j2]))
            continue
        if any(k not in bmap for k in range(i1, i2)):
            return None
        start, end = bmap[i1], bmap[i2 - 1] + 1
        if end - start != i2 - i1:
            return None
        edits.append((start, end, p[j1:j2]))
    out = list(o)
    for start, end, lines in sorted(edits, key=lambda e: e[0], reverse=True):
        out[start:end] = lines
    return "".join(out)


def render(yf: YamlFile) -> bytes:
    patched = _dump(_yaml(yf.indent, yf.explicit_start), yf.doc)
    original = _decode(yf.path, yf.original)[0]
    if not original.endswith("\n"):
        # ruamel always ends with a newline; appending after a last line needs one anyway.
        original += "\n"
    if yf.base_text == original:
        return _encode(patched, yf.crlf, yf.bom)
    spliced = _splice(original, yf.base_text, patched)
    if spliced is None or not _same_data(spliced, patched):
        raise LiteLLMConfigError(
            f"{yf.path}: cannot add the drop settings without reformatting other lines of this file; "
            "add them by hand (the plan shows them) or normalise its indentation and retry"
        )
    return _encode(spliced, yf.crlf, yf.bom)


def _same_data(a: str, b: str) -> bool:
    y = YAML(typ="safe", pure=True)
    try:
        return bool(y.load(a) == y.load(b))
    except YAMLError:
        return False


def plan_patch(cfg: LiteLLMConfig, chosen: list[Entry]) -> list[FilePatch]:
    """Apply the drop settings to the in-memory documents; return one FilePatch per file."""
    if not chosen:
        raise LiteLLMConfigError("no LiteLLM model entry chosen for the drop list; choose the cloud models' entries")
    chosen_set = set(chosen)
    changes: dict[Path, list[YamlChange]] = {f.path: [] for f in cfg.files}
    done: set[int] = set()
    for entry in chosen:
        yf = cfg.file_for(entry.file)
        item = yf.doc["model_list"][entry.index]
        lp = item.get("litellm_params")
        if lp is None:
            raise LiteLLMConfigError(f"{entry.describe()} has no litellm_params; it cannot be patched")
        if not isinstance(lp, CommentedMap):
            raise LiteLLMConfigError(f"{entry.describe()}: litellm_params must be a mapping")
        sharers = cfg._params_owner.get(id(lp), [])
        others = [e for e in sharers if e not in chosen_set]
        if others:
            names = ", ".join(e.describe() for e in others)
            raise LiteLLMConfigError(
                f"{entry.describe()} shares its litellm_params (a YAML alias) with {names}; patching it would change "
                "those too. Give that entry its own litellm_params (or use `<<: *anchor` to merge) and retry, "
                "or choose the sharing entries as well"
            )
        if id(lp) in done:
            continue
        done.add(id(lp))
        # The change is recorded against the first entry holding the mapping (where the anchor is).
        changes[yf.path].extend(_patch_params(yf, lp, sharers[0].locator() if sharers else entry.locator()))
    changes[cfg.main.path].extend(_patch_settings(cfg.main))
    out: list[FilePatch] = []
    for yf in cfg.files:
        patched = render(yf) if changes[yf.path] else yf.original
        out.append(FilePatch(path=yf.path, original=yf.original, patched=patched, changes=changes[yf.path]))
    return out


def removed_lines(before: bytes, after: bytes) -> list[str]:
    """Lines of ``before`` that are not kept in ``after`` (for checking the patch is additive)."""
    a = before.decode("utf-8", "replace").splitlines()
    b = after.decode("utf-8", "replace").splitlines()
    out: list[str] = []
    for tag, i1, i2, _j1, _j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            out.extend(a[i1:i2])
    return out
