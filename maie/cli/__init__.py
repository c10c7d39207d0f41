"""The ``maie`` command.

``up`` (everything), ``api``, ``stream`` and ``worker`` run the service (:mod:`maie.cli.service`); ``submit``,
``status`` and ``result`` talk to a running one (:mod:`maie.cli.remote`); ``transcribe`` runs the
pipeline in this process with no server at all (:mod:`maie.cli.offline`).
"""

from __future__ import annotations

import click

from maie import __version__
from maie.cli.offline import transcribe
from maie.cli.remote import result, status, submit
from maie.cli.service import api, stream, up, worker

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="maie")
def main() -> None:
    """MAIE: recordings to transcripts and structured summaries."""


for _command in (up, api, stream, worker, submit, status, result, transcribe):
    main.add_command(_command)
