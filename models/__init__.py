"""The database only: the CRM schema (``tables``), Alembic migrations, the engine
(``db``, from a URL, never the application's settings) and one store per aggregate: calls
(``calllog``), clients/agents/callbacks for a live call (``crm``), flows (``flows``),
surveys (``surveys``), campaigns (``campaigns``, ``segments``), results
(``survey_results``), the CSV import's writing (``importing``).

May import ``models``, ``core``, ``dialplan`` and database libraries; never ``usecases``,
the adapters (``ari_app``, ``agi``, ``web``) or ``centrala``."""
