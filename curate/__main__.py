"""`python -m curate` is the `curate` command."""

from curate.cli import entry

if __name__ == "__main__":
    entry()
