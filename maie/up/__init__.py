"""``maie up``: the supervisor of the API and worker processes, and the servers it embeds."""
