"""Every pure decision: phones, the prompter's media actions, the ACD, the info line's IVR
interpreter and routing, the surveys (interpreter, NPS, campaign rules, reports' maths),
the CSV row parsing, the desk's forms and screen-pop, and ``errors.DomainError``. No I/O:
tested without a PBX, a database or a clock of its own.

May import only ``core``, ``dialplan`` (the pure flow language it interprets), the standard
library's pure modules (never asyncio, socket, subprocess, sqlite3 ...) and pure libraries
(phonenumbers, pydantic, yaml). Everything else may import it (tests/unit/test_layers.py)."""
