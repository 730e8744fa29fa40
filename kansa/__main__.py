"""`python -m kansa`: the same command as the installed `kansa`."""

from kansa.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
