"""``python -m hbtools``: the same as the ``hbtool`` command."""

from hbtools.cli import main

if __name__ == "__main__":
    main()
