"""The info line's flow language, pure: the shape of a flow (``model``), its validator
(``validate``), business hours and holidays (``hours``), and the shipped flow
(``infoline.yaml``). Its versions in the database are ``models.flows``.

The lowest layer: may import only ``dialplan``, the standard library's pure modules and pure
libraries (pydantic, yaml); ``core`` builds on it."""
