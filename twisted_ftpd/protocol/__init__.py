"""The pure FTP rules, sans I/O: replies and the errors that carry them, the command
table, parser, session state, addresses, paths and the value types every layer shares.

Imports only the standard library and ``listing/`` (``tests/test_layering.py``).
"""
