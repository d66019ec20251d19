"""The `indextts-dist` command line."""
