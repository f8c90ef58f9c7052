"""Printed letters: a batch of ``core.letters.Letter`` typeset into one A4 PDF (a page per
letter, for a window envelope) or a letter as a PNG, by Typst (``letters.pdf``), with the
fonts shipped here (``fonts/``: DejaVu Sans, its licence beside it).

An adapter, like ``mail`` and ``sms``: may import ``core``, never another adapter."""
