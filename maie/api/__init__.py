"""Litestar edge: app factory, controllers, guards, upload handling."""

from maie.api.app import create_app

__all__ = ["create_app"]
