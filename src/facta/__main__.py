"""``python -m facta``: the same as the ``facta`` command."""

from facta.cli import main

if __name__ == "__main__":
    main(prog_name="facta")
