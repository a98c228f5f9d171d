"""Where this copy of glidein_plugins lives (one place, whatever module asks)."""

import os

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
"""The ``glidein_plugins`` package directory."""
INSTALL_DIR = os.path.dirname(PACKAGE_DIR)
"""The directory holding the package: the glidein tarball's top, or site-packages."""
