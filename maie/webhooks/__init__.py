"""Webhooks: which callback URLs are allowed, how events are signed, and how they are posted."""
