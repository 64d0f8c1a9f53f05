"""Command-line entry points. Each component owns one sub-command module here."""
