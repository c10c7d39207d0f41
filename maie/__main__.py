"""``python -m maie`` is the ``maie`` command."""

from maie.cli import main

main()
