"""`python -m scimsync.cli`."""

from scimsync.cli import main

main()
