"""Dramatiq edge: broker middleware, thin actors, stage bookkeeping and the model residency cache."""
