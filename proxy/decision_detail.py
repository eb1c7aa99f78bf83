"""How a decision record's ``detail`` starts when a local answer broke after content was sent: the
server writes it, ``stats`` and the status line count such a turn as a routing miss.

A module of its own, importing nothing: the status line runs on every refresh of Claude Code's
screen and must not pay for the decision log's writer (``logging``, ``threading``) to read it.
"""

BROKEN_DETAIL = "local stream broke after content"
