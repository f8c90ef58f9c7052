"""The agent desktop's decisions, pure: form checks, dispositions and the wallboard's figures
(``forms``), and what the screen-pop shows (``screenpop``, on read-only facts, not rows).

May import only ``core``, ``dialplan`` and pure libraries (see ``core``)."""
