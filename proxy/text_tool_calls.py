"""Tool calls a local model wrote into its text instead of the server's tool-call field.

Small and quantized models often answer a tool-using turn with the call as text.  Shapes seen:

=================  ====================================================================================
``tool_call_tag``  ``<tool_call>{"name": "Read", "arguments": {...}}</tool_call>`` (Qwen, Hermes)
``function_tag``   ``<function=Read>{...}</function>`` or ``<function=Read><parameter=k>v</parameter>
                   </function>``, alone or inside ``<tool_call>`` (Qwen3-Coder)
``mistral``        ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]`` or ``[TOOL_CALLS]Read[ARGS]{...}``
``bare_json``      ``{"name": "Read", "arguments": {...}}`` (or a list of them) as the whole answer
``fenced_json``    the same object inside a fenced code block
``single_quoted``  the same object written as pseudo-JSON with single quotes (Python literal)
=================  ====================================================================================

Two pure pieces, used by both local dialects' translators:

* :class:`TextHold`, fed the answer's text as it streams, says as early as it can whether the text
  may be committed to the client.  An answer whose first :data:`HOLD_CHARS` characters show none of
  the shapes (nor the start of one) is plain text: it is released at once and passes through from
  then on.  One that shows a shape is held to its end.  The window is what lets a tool call follow
  a sentence of prose ("I'll read the file.\\n<tool_call>..."); its cost to time-to-first-token is
  measured in ``bench/bench_local.py``.
* :func:`parse_text` decides, on the whole held text, between plain text (``None``), valid calls
  (:class:`Found`: each names one of the request's tools and its arguments satisfy that tool's
  ``input_schema``, checked with ``jsonschema``), and a call that cannot be made valid
  (:class:`Unusable`: the caller falls back to the cloud before the first byte).

What counts as a call is kept narrow so that a valid text answer is never changed: the tag shapes
are unambiguous; a JSON object counts only when it has a ``name`` and an ``arguments`` (or
``parameters``/``input``) key and ends the answer, and, after prose, only when it names one of the
request's tools — a code answer that shows ``{"name": "Alice", "age": 3}`` or ends with an example
call to a tool the request does not have is text.  Arguments get the tool-call path's narrow repair
(``openai_stream.parse_tool_arguments``: code fences, trailing commas) and nothing more.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, UnknownType
from referencing.exceptions import Unresolvable

from proxy import jsonio
from proxy.tool_arguments import parse_tool_arguments, strip_trailing_commas

# How many characters of an answer without any shape are held before it is released as text.
HOLD_CHARS = 64

_TAGS = ("<tool_call>", "<function=", "[TOOL_CALLS]")
_TRIGGER = re.compile(r"[<\[{]")
# The first key of a call object: `{"name":` / `{ 'name':` / `[{"name":` (also inside "function": {…}).
_JSON_MARK = re.compile(r"""\{\s*["']name["']\s*:""")
# A tail that may still grow into a JSON mark: `{`, `{ "na`, `{'name'` …
_JSON_MARK_PARTIAL = re.compile(r"""\{\s*(?:["'](?:n(?:a(?:m(?:e(?:["']\s*)?)?)?)?)?)?$""")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?[ \t]*```\s*$", re.DOTALL)
_FUNC_OPEN = re.compile(r"<function=([^>\n]{1,200})>")
_PARAM = re.compile(r"<parameter=([^>\n]{1,200})>(.*?)(?:</parameter>|(?=<parameter=)|(?=</function>)|$)", re.DOTALL)
_MISTRAL_NAMED = re.compile(r"\s*([A-Za-z0-9_.:-]{1,200})\[ARGS\]")
_ARG_KEYS = ("arguments", "parameters", "input")
_CALL_KEYS = frozenset({"name", "type", "id", *_ARG_KEYS})
_DETAIL_MAX = 200


class ToolSchemas(Mapping[str, Any]):
    """The request's tools, name → input_schema, kept encoded for as long as the answer streams.

    Claude Code's 24 schemas are ~52 KB as Python objects and ~16 KB as JSON bytes; the local path
    lets go of the parsed body to keep memory per answer low (``LocalRequest.take_body``), and a
    schema is only read when the text holds a call to check."""

    __slots__ = ("_raw",)

    def __init__(self, schemas: Mapping[str, Any]) -> None:
        # Copied: orjson's bytes keep their whole write buffer (~4 KB each, measured with tracemalloc).
        self._raw = {name: memoryview(jsonio.dumps(schema)).tobytes() for name, schema in schemas.items()}

    def __getitem__(self, name: str) -> Any:
        return jsonio.loads(self._raw[name])

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Found:
    """Valid calls written as text: ``before`` and ``after`` are the prose around them."""

    shape: str
    before: str
    calls: tuple[ToolCall, ...]
    after: str = ""


class Unusable(Exception):
    """The text looks like a tool call but cannot be made valid (unknown tool, broken arguments,
    schema violation).  ``detail`` is short and carries no argument values."""

    cause = "text-tool-call-invalid"

    def __init__(self, shape: str, detail: str) -> None:
        super().__init__(f"{shape}: {detail}")
        self.shape = shape
        self.detail = f"{shape}: {detail}"[:_DETAIL_MAX]


def first_mark(text: str) -> int:
    """Where the earliest shape starts in ``text``, or -1."""
    found = [p for p in (text.find(tag) for tag in _TAGS) if p >= 0]
    m = _JSON_MARK.search(text)
    if m:
        found.append(m.start())
    return min(found, default=-1)


def _partial_len(text: str) -> int:
    """How many characters at the end of ``text`` may still grow into a shape's opening."""
    tail = text[-16:]
    best = 0
    for tag in _TAGS:
        for n in range(min(len(tag) - 1, len(tail)), best, -1):
            if tag.startswith(tail[-n:]):
                best = n
                break
    m = _JSON_MARK_PARTIAL.search(tail)
    if m:
        best = max(best, len(tail) - m.start())
    return best


class TextHold:
    """Decides, chunk by chunk, when an answer's text may reach the client (see module docstring).

    ``feed`` returns the text to send now (``""`` while holding); ``finish`` (end of the answer)
    returns the held text as plain text, or the :class:`Found` calls, or raises :class:`Unusable`.
    ``release`` gives up holding (the model made a real tool call: its text is prose).

    Three phases: the window (the first ``hold_chars`` characters, held whole: a call found there
    that cannot be made valid still falls back to the cloud before the first byte); then watching
    (text passes as it comes, except a tail that may be the start of a shape); and, from the first
    shape on, holding to the end of the answer.  A call after the window is still repaired; one that
    cannot be, raises at the end, after content was sent (the caller ends the stream with an error).
    """

    __slots__ = ("_buf", "_passing", "_sent", "_suspect", "hold_chars", "tools")

    def __init__(self, tools: Mapping[str, Any], hold_chars: int = HOLD_CHARS) -> None:
        self.tools = tools
        self.hold_chars = hold_chars
        self._buf: list[str] = []
        self._passing = False  # a real tool call came: nothing is held any more
        self._sent = False  # some text was released before what is held now
        self._suspect = False

    @property
    def holding(self) -> bool:
        return bool(self._buf)

    @property
    def suspect(self) -> bool:
        """A shape has been seen: the rest of the answer is held to its end."""
        return self._suspect

    def feed(self, text: str) -> str:
        if self._passing:
            return text
        self._buf.append(text)
        if self._suspect:
            return ""
        held = "".join(self._buf)
        if self._sent and _TRIGGER.search(held) is None:
            # Every shape opens with one of these characters: most chunks of prose have none.
            self._buf = []
            return held
        mark = first_mark(held)
        if mark >= 0:
            self._suspect = True
            if not self._sent:
                self._buf = [held]
                return ""
            self._buf = [held[mark:]]
            return self._out(held[:mark])
        if not self._sent and len(held.strip()) < self.hold_chars:
            self._buf = [held]
            return ""
        keep = _partial_len(held)
        self._buf = [held[len(held) - keep :]] if keep else []
        return self._out(held[: len(held) - keep])

    def _out(self, text: str) -> str:
        if text:
            self._sent = True
        return text

    def release(self) -> str:
        held = "".join(self._buf)
        self._buf = []
        self._passing = True
        return held

    def finish(self) -> str | Found:
        suspect, sent = self._suspect, self._sent
        held = self.release()
        if not suspect:
            return held
        found = parse_text(held, self.tools, after_prose=sent)
        return held if found is None else found


# --- parsing the whole text ----------------------------------------------------------------------


def parse_text(text: str, tools: Mapping[str, Any], *, after_prose: bool = False) -> Found | None:
    """Plain text (``None``), valid calls (:class:`Found`), or raises :class:`Unusable`.

    ``after_prose``: ``text`` continues prose already sent (a JSON call then needs a known name)."""
    tag_at = [(p, tag) for tag in _TAGS if (p := text.find(tag)) >= 0]
    if tag_at:
        pos, _tag = min(tag_at)
        shape, calls, after = _tag_calls(text[pos:], tools)
        return Found(shape, text[:pos], tuple(_checked(shape, c, tools) for c in calls), after)
    return _json_calls(text, tools, after_prose)


def _tag_calls(text: str, tools: Mapping[str, Any]) -> tuple[str, list[tuple[str, Any]], str]:
    """Consecutive tag-shaped calls at the start of ``text``: (shape, [(name, raw args)], rest)."""
    calls: list[tuple[str, Any]] = []
    shape = ""
    rest = text
    while True:
        stripped = rest.lstrip()
        if stripped.startswith("<tool_call>"):
            body, rest = _until(stripped[len("<tool_call>") :], "</tool_call>")
            inner = body.strip()
            if inner.startswith("<function="):
                shape = shape or "function_tag"
                calls += _function_calls(inner, tools)
            else:
                shape = shape or "tool_call_tag"
                calls += _json_objects("tool_call_tag", inner)
        elif stripped.startswith("<function="):
            shape = shape or "function_tag"
            end = stripped.find("</function>")
            chunk, rest = (stripped, "") if end < 0 else (stripped[: end + len("</function>")], stripped[end + 11 :])
            calls += _function_calls(chunk, tools)
        elif stripped.startswith("[TOOL_CALLS]"):
            shape = shape or "mistral"
            calls_here, rest = _mistral(stripped[len("[TOOL_CALLS]") :])
            calls += calls_here
        else:
            break
    if not calls:
        raise Unusable(shape or "tool_call_tag", "a tool-call tag holds no call")
    return shape, calls, rest


def _until(text: str, close: str) -> tuple[str, str]:
    end = text.find(close)
    if end < 0:
        return text, ""  # a closing tag left off at the end of the answer
    return text[:end], text[end + len(close) :]


def _function_calls(text: str, tools: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``<function=Name>…</function>`` (JSON or ``<parameter=k>v</parameter>`` body)."""
    calls: list[tuple[str, Any]] = []
    for m in _FUNC_OPEN.finditer(text):
        name = m.group(1).strip()
        end = text.find("</function>", m.end())
        body = text[m.end() : end if end >= 0 else len(text)]
        if "<parameter=" in body:
            schema = tools.get(name)
            props = schema.get("properties") if isinstance(schema, dict) else None
            args: dict[str, Any] = {}
            for p in _PARAM.finditer(body):
                key = p.group(1).strip()
                args[key] = _param_value(p.group(2), props.get(key) if isinstance(props, dict) else None)
            calls.append((name, args))
        else:
            calls.append((name, body))
    if not calls:
        raise Unusable("function_tag", "a <function=…> tag without a name")
    return calls


def _param_value(raw: str, prop: Any) -> Any:
    """A ``<parameter>`` value is text; the tool's schema says when it is meant as JSON (Qwen3-Coder's
    own parser does the same)."""
    value = raw.strip("\n")
    want = prop.get("type") if isinstance(prop, dict) else None
    if want in (None, "string") or (isinstance(want, list) and "string" in want):
        return value
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return value  # the schema check reports it


def _mistral(text: str) -> tuple[list[tuple[str, Any]], str]:
    named = _MISTRAL_NAMED.match(text)
    if named:
        args, rest = _one_json(text[named.end() :])
        if args is None:
            raise Unusable("mistral", f"the arguments of {named.group(1)[:80]!r} are not JSON")
        return [(named.group(1), args)], rest
    value, rest = _one_json(text)
    if value is None:
        raise Unusable("mistral", "[TOOL_CALLS] is not followed by JSON")
    return _call_objects("mistral", value), rest


def _one_json(text: str) -> tuple[Any, str]:
    stripped = text.lstrip()
    try:
        value, end = json.JSONDecoder().raw_decode(stripped)
    except (ValueError, RecursionError):
        return None, text
    return value, stripped[end:]


def _json_objects(shape: str, text: str) -> list[tuple[str, Any]]:
    values = _json_values(text)
    if values is None:
        literal = _literal(text)
        if literal is None:
            raise Unusable(shape, "the call is not JSON")
        values = [literal]
    calls: list[tuple[str, Any]] = []
    for v in values:
        calls += _call_objects(shape, v)
    return calls


def _json_values(text: str) -> list[Any] | None:
    """Whitespace-separated JSON values making up all of ``text``; trailing commas repaired."""
    for candidate in (text, None):
        src = text if candidate is not None else _repair(text)
        if src is None:
            return None
        values: list[Any] = []
        decoder = json.JSONDecoder()
        pos, n = 0, len(src)
        try:
            while True:
                while pos < n and src[pos] in " \t\r\n":
                    pos += 1
                if pos >= n:
                    break
                value, pos = decoder.raw_decode(src, pos)
                values.append(value)
        except (ValueError, RecursionError):
            continue
        if values:
            return values
    return None


def _repair(text: str) -> str | None:
    fixed = strip_trailing_commas(text)
    return fixed if fixed != text else None


def _literal(text: str) -> Any:
    """Single-quoted pseudo-JSON read as a Python literal (``ast.literal_eval`` evaluates nothing)."""
    src = text.strip()
    if not src.startswith(("{", "[")) or len(src) > 1_000_000:
        return None
    try:
        return ast.literal_eval(src)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _call_objects(shape: str, value: Any) -> list[tuple[str, Any]]:
    items = value if isinstance(value, list) else [value]
    calls: list[tuple[str, Any]] = []
    for item in items:
        call = _as_call(item, loose=True)
        if call is None:
            raise Unusable(shape, "a call is not an object with a string 'name'")
        calls.append(call)
    return calls


def _as_call(item: Any, *, loose: bool) -> tuple[str, Any] | None:
    """``{"name", "arguments"}`` (or ``parameters``/``input``; or OpenAI's ``{"function": {...}}``).

    ``loose`` (inside a tag): the arguments key may be missing (a call without parameters)."""
    if not isinstance(item, dict):
        return None
    fn = item.get("function")
    if isinstance(fn, dict) and set(item) <= {"type", "id", "function"}:
        item = fn
    name = item.get("name")
    if not isinstance(name, str) or not set(item) <= _CALL_KEYS:
        return None
    for key in _ARG_KEYS:
        if key in item:
            return name, item[key]
    return (name, {}) if loose else None


def _json_calls(text: str, tools: Mapping[str, Any], after_prose: bool) -> Found | None:
    """A JSON call (bare, fenced or single-quoted) that ends the answer; ``None``: plain text."""
    fence = _FENCE.search(text)
    if fence:
        before = text[: fence.start()]
        return _json_candidate("fenced_json", before, fence.group(1), tools, after_prose)
    m = _JSON_MARK.search(text)
    if m is None:
        return None
    start = m.start()
    # A list of calls opens with "[" just before the first object.
    lead = text[:start].rstrip()
    if lead.endswith("["):
        start = len(lead) - 1
    return _json_candidate("bare_json", text[:start], text[start:], tools, after_prose)


def _json_candidate(
    shape: str, before: str, body: str, tools: Mapping[str, Any], after_prose: bool = False
) -> Found | None:
    prose = after_prose or bool(before.strip())
    values = _json_values(body)
    if values is None:
        literal = _literal(body)
        if literal is not None:
            values, shape = [literal], "single_quoted"
    if values is None:
        if not prose and _JSON_MARK.match(body.lstrip().lstrip("[").lstrip()) and _names_call(body, tools):
            raise Unusable(shape, "the call is not valid JSON (cut off or broken)")
        return None
    items: list[Any] = []
    for v in values:
        items += v if isinstance(v, list) else [v]
    calls = [_as_call(item, loose=False) for item in items]
    strict = [c for c in calls if c is not None]
    if not strict or len(strict) != len(calls):
        # Not call objects (a JSON answer, an example): text.  A tool's own name without any
        # arguments key is still a call.
        named = [_as_call(item, loose=True) for item in items]
        if not named or any(c is None or c[0] not in tools for c in named):
            return None
        strict = [c for c in named if c is not None]
    if prose and any(name not in tools for name, _ in strict):
        return None  # an example call in a prose answer, not a call to make
    return Found(shape, before, tuple(_checked(shape, c, tools) for c in strict))


def _names_call(body: str, tools: Mapping[str, Any]) -> bool:
    """Broken JSON that still reads as a call: an arguments key, or one of the tools' names."""
    if any(re.search(rf"""["']{k}["']\s*:""", body) for k in _ARG_KEYS):
        return True
    m = re.match(r"""\s*\[?\s*\{\s*["']name["']\s*:\s*["']([^"']{1,200})["']""", body)
    return bool(m and m.group(1) in tools)


def _checked(shape: str, call: tuple[str, Any], tools: Mapping[str, Any]) -> ToolCall:
    name, raw = call
    name = name.strip()
    if name not in tools:
        raise Unusable(shape, f"names {name[:80]!r}, not one of the request's tools")
    if isinstance(raw, str):
        try:
            args = parse_tool_arguments(raw)
        except ValueError as exc:
            raise Unusable(shape, f"the arguments of {name[:80]!r} are not a JSON object: {str(exc)[:80]}") from None
    elif isinstance(raw, dict):
        args = raw
    else:
        raise Unusable(shape, f"the arguments of {name[:80]!r} are a {type(raw).__name__}, not an object")
    problem = schema_problem(tools[name], args)
    if problem:
        raise Unusable(shape, f"the arguments of {name[:80]!r} do not fit its input_schema: {problem}")
    return ToolCall(name, args)


def schema_problem(schema: Any, args: dict[str, Any]) -> str | None:
    """Why ``args`` does not satisfy ``schema`` (a short line without values), or None."""
    if not isinstance(schema, dict):
        return None
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(args))
    except SchemaError:
        return "the tool's input_schema is not a valid JSON Schema"
    except (RecursionError, Unresolvable, UnknownType):
        return "the tool's input_schema cannot be checked"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "arguments"
    if error.validator == "required":
        return str(error.message)[:120]  # names the missing key only
    return f"{where} fails {error.validator!r}"[:120]
