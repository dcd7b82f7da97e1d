"""`python -m sftphook`: the same as the `sftphook` command."""

from sftphook.cli import main

main()
