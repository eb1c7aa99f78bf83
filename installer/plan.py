"""The plan: every file the run would write compared with what is on disk now, the LiteLLM patches,
the deploy and the service action: what is shown before anything is applied.

Rendering is pure (bytes in memory); comparing with disk is a read.  Only files whose bytes or mode
differ are written, which is what makes a second run "nothing to change" and a dry run free.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import click

from installer.deploy import DeployPlan
from installer.litellm_yaml import FilePatch


@dataclass
class FileChange:
    path: Path
    new: bytes
    mode: int
    role: str
    step: str
    secret: bool = False
    old: bytes | None = None
    old_mode: int | None = None
    # Shown instead of the diff (a copy of a file the user can read in the checkout, say).
    brief: str | None = None

    @classmethod
    def of(cls, path: Path, new: bytes, mode: int, role: str, step: str, *, secret: bool = False,
           brief: str | None = None) -> FileChange:
        fc = cls(path, new, mode, role, step, secret, brief=brief)
        if path.exists():
            fc.old = path.read_bytes()
            fc.old_mode = path.stat().st_mode & 0o777
        return fc

    @property
    def status(self) -> str:
        if self.old is None:
            return "create"
        if self.old != self.new or self.old_mode != self.mode:
            return "update"
        return "unchanged"

    @property
    def changed(self) -> bool:
        return self.status != "unchanged"

    def diff(self) -> str:
        if self.secret:
            return f"    (contents hidden: {self.path.name} holds secrets; mode {self.mode:04o})\n"
        if self.brief is not None:
            return f"    ({self.brief}; mode {self.mode:04o})\n"
        a = [] if self.old is None else self.old.decode("utf-8", "replace").splitlines(keepends=True)
        b = self.new.decode("utf-8", "replace").splitlines(keepends=True)
        text = "".join(difflib.unified_diff(a, b, fromfile=f"{self.path} (now)", tofile=f"{self.path} (after)"))
        if not text and self.old_mode != self.mode:
            return f"    (mode {self.old_mode or 0:04o} -> {self.mode:04o})\n"
        return text


def colour_diff(diff: str) -> str:
    out = []
    for line in diff.splitlines(keepends=True):
        if line.startswith(("+++", "---")):
            out.append(click.style(line, bold=True))
        elif line.startswith("+"):
            out.append(click.style(line, fg="green"))
        elif line.startswith("-"):
            out.append(click.style(line, fg="red"))
        elif line.startswith("@@"):
            out.append(click.style(line, fg="cyan"))
        else:
            out.append(line)
    return "".join(out)


@dataclass
class Plan:
    files: list[FileChange]
    yaml_patches: list[FilePatch]
    deploy: DeployPlan
    env_values: dict[str, str]
    router_key: str
    manager: bool
    service_action: str  # "start", "restart" or "none"
    restart_litellm: bool
    port: int
    notes: list[str] = field(default_factory=list)
    # local.api and why (installer.dialect).
    local_api: str = "openai"
    local_api_why: str = ""

    def file(self, role: str) -> FileChange:
        return next(f for f in self.files if f.role == role)

    @property
    def yaml_changed(self) -> bool:
        return any(p.changed for p in self.yaml_patches)

    @property
    def nothing_to_do(self) -> bool:
        return (
            not self.yaml_changed
            and not any(f.changed for f in self.files)
            and not self.deploy.needed
            and self.service_action == "none"
        )
