"""`python -m branchpoint` runs the CLI."""

from branchpoint.cli import main

main()
