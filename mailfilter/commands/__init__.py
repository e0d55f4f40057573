"""One module per subcommand: argument parsing, then one call into the library.

Each module has ``main(argv: list[str], prog: str) -> int``. They are imported
lazily by ``mailfilter.cli`` so the per-message path pays only for its own.
"""
