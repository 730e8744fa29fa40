"""marimo notebooks (plain .py files); a package only so `kansa report` finds them when installed."""
