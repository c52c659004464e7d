"""The `lintel` command line: the only place that parses argv."""
