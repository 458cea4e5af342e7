"""Benchmarks, run by hand: `.venv/bin/python -m bench.<name>`. Never part of the test suite.

Every figure is printed beside a bare aiohttp hello-world measured in the same run on the
same machine, and as a ratio to it, so numbers from different machines can be compared.
"""
