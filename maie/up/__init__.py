"""``maie up``: the embedded servers (Redis, PostgreSQL) and the supervisor of MAIE's processes."""
