"""`python -m ntkeval ...` is the same as the `ntkeval` command."""

from ntkeval.app import main

main()
