"""``python -m dispatch`` runs the CLI (used to start worker processes)."""

from dispatch.cli import main

main()
