"""uninstall.py's logic: replay the installer's journal to undo exactly what Switchyard did."""
