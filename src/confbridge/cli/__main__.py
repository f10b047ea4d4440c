"""`python -m confbridge.cli`: how `serve` starts its SFU workers, and tests start commands."""

from confbridge.cli import app

app()
