#!/usr/bin/env python3
"""Undo Switchyard's install: ``python3 uninstall.py [--dry-run] [--yes] [--purge]``.

The logic is :mod:`uninstaller.bootstrap` (standard library only until it hands over to the
``uninstaller`` package, re-running itself with the deployed venv's Python when this interpreter
lacks the libraries); the installer deploys that file as ``$XDG_DATA_HOME/switchyard/uninstall.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Not sys.path[0] alone: under ``python3 -I`` (or -P) the script's directory is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from uninstaller.bootstrap import main

if __name__ == "__main__":
    main()
