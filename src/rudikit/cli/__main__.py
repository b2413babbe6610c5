"""``python -m rudikit.cli``: the ``rudi`` command without the installed script."""

from rudikit.cli import app

app()
