"""The optional C extension; everything else is in pyproject.toml.

``stamp_suite.net._mmsg`` (recvmmsg/sendmmsg, Linux) is built when a C compiler and the
Python headers are there; ``optional=True`` makes a failed build a warning, not an error, and
the program then uses the standard socket module (``stamp-suite -V --verbose`` says which).
"""

import sys

from setuptools import Extension, setup

extensions = []
if sys.platform.startswith("linux"):
    extensions.append(Extension("stamp_suite.net._mmsg", ["src/stamp_suite/net/_mmsg.c"], optional=True))

setup(ext_modules=extensions)
