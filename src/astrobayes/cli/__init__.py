"""Command-line interface (argument parsing and orchestration only)."""
