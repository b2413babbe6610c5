"""The read API of the results store: every read of stored rows outside ``rudikit.store`` goes
through a named function here, so the SQL lives in one place and is tested on SQLite and
PostgreSQL. Modules are grouped by what they read; writers stay in ``rudikit.store``."""
