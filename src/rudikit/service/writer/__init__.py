"""The service's store writer: every answer is committed before it is sent (see
:mod:`rudikit.service.writer.group_commit`), through a SQLite or PostgreSQL backend."""
