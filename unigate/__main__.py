"""``python -m unigate`` → the CLI."""

from unigate.cli import main

main()
