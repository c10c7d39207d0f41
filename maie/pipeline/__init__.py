"""Pure pipeline stages: no litestar, dramatiq or redis imports here."""
