"""The glidein's runs built on the engine: setup and the periodic re-check."""
