"""``python -m glidein_plugins``."""

import sys

from glidein_plugins.cli import main

sys.exit(main())
