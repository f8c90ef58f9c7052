"""The shipped survey definitions (``nps.yaml``), data only: the survey code is in
``core.surveys`` and its database store in ``models.surveys``. It may import nothing."""
