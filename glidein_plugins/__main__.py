"""``python -m glidein_plugins``."""

from glidein_plugins.cli import exit_now, main

exit_now(main())
