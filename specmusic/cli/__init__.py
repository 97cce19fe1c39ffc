"""Command-line interface: one module per subcommand over the typed library."""
