"""`python -m cli`: the same as the `spotify-sync` command."""

from cli import main

# Named like the console script: without it click would show "python -m cli" in usage lines.
main(prog_name="spotify-sync")
