"""The host layer: everything the installer, the uninstaller and the ops toolkit do to this machine.

One home each for paths, the env file, atomic writes, the pidfile, processes, systemd and HTTP
probes.  Standard library only: ``uninstall.py`` imports it before it knows whether third-party
libraries are there, and the deployed venv (which carries only the ``proxy`` package's world) has it.
"""
