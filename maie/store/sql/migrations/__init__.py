"""Alembic migrations of the system of record, shipped in the package (:mod:`maie.store.sql.migrate`)."""
