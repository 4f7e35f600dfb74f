"""The `embedstack` command line."""
