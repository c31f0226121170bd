"""Pure LIST/NLST and MLSD/MLST formatters: entries and ``now`` in, lines out.

Imports only the standard library and ``protocol/`` (``tests/test_layering.py``).
"""
