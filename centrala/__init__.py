"""Wiring only: the ``centrala`` command (``cli``, ``cli_surveys``), settings, logging, the
local PBX runner (``pbx``), prompt synthesis (``prompts``: espeak-ng and sox) and ``serve``
(``service``: builds every part from the settings and injects them).

The top layer: may import every package."""
