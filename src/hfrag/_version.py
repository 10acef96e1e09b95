"""The package version, read by the build and sent in the User-Agent header.

It is always the newest version heading of CHANGELOG.md (``tests/test_packaging.py`` checks).
"""

__version__ = "0.2.0"
