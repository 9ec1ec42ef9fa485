"""``python -m podium``: the command line, as the ``podium`` script runs it."""

from podium.cli import main

main()
