"""Broken on purpose: it raises while being imported."""

raise RuntimeError("sample plugin refuses to load on this node")
