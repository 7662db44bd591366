"""``python -m tickwire.cli``: the same as the ``tickwire`` console script."""

from tickwire.cli import main

main()
