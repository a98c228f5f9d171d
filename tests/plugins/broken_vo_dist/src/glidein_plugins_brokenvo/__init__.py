"""brokenvo: a plugin whose import fails, as one built against a missing module would."""

raise RuntimeError("brokenvo cannot start: its site configuration module is missing")
