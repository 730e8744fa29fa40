"""The `kansa` command and the demo that ties the packages together."""
