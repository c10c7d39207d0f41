"""The ``maie`` command.

``up`` (everything), ``api``, ``stream`` and ``worker`` run the service (:mod:`maie.cli.service`);
``db`` keeps its database schema current (:mod:`maie.cli.database`); ``submit``, ``status``,
``result``, ``search`` and ``delete`` talk to a running one (:mod:`maie.cli.remote`); ``transcribe`` runs the
pipeline in this process with no server at all (:mod:`maie.cli.offline`).
"""

from __future__ import annotations

import click

from maie import __version__
from maie.cli.database import db
from maie.cli.offline import transcribe
from maie.cli.remote import delete, result, search, status, submit
from maie.cli.service import api, stream, up, worker

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="maie")
def main() -> None:
    """MAIE: recordings to transcripts and structured summaries."""


for _command in (up, api, stream, worker, db, submit, status, result, search, delete, transcribe):
    main.add_command(_command)
