"""IVR surveys, pure: the definition (``model``) and its checks (``validate``), the call as a
state machine (``interpreter``), NPS statistics (``nps``), campaign rules (``campaign``), the
detractor's follow-up (``followup``), results (``report``) and contact lists (``contacts``).

May import only ``core``, ``dialplan`` and pure libraries (see ``core``)."""
