"""The documentation: README stays a newcomer's page (<= 10 KB, the two-command quick start
verbatim, links that lead somewhere), and the site's navigation and its generated pages hold
together (the full check is ``tox -e docs``: ``mkdocs build --strict``)."""

from __future__ import annotations

import re
from typing import Any

import yaml
from conftest import ROOT, docs_hooks

README = ROOT / "README.md"
DOCS = ROOT / "docs"
QUICK_START = [  # .ci/run greps the second one
    "```sh\npython3 -m pip install . && glidein-plugins run\n```",
    "```sh\npython3 -m pip install -c constraints.txt tox && python3 -m tox\n```",
]



def nav_pages(nav: Any) -> list[str]:
    """Every page path the mkdocs.yml navigation names."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return [page for item in nav for page in nav_pages(item)]


def test_readme_is_short_and_keeps_the_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.encode()) <= 10 * 1024
    for block in QUICK_START:
        assert block in text
    assert text.index(QUICK_START[0]) < text.index(QUICK_START[1])


def test_readme_links_lead_to_files() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert len(local) >= 10
    for link in local:
        assert (ROOT / link).exists(), link


def test_every_page_is_in_the_navigation_and_exists_or_is_generated() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = nav_pages(config["nav"])
    on_disk = {path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")}
    generated = set(docs_hooks().pages(on_disk))
    assert not on_disk & generated
    assert set(nav) == on_disk | generated
    assert len(nav) == len(set(nav))


def test_placeholders_give_way_to_real_pages() -> None:
    hooks = docs_hooks()
    assert set(hooks.pages(set())) == {hooks.HOOK_REFERENCE, *hooks.PLACEHOLDERS}
    assert set(hooks.pages(set(hooks.PLACEHOLDERS))) == {hooks.HOOK_REFERENCE}


def test_the_site_fetches_nothing() -> None:
    """No plugin that downloads at build time (Material's social cards, privacy), no web fonts."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    plugins = [next(iter(p)) if isinstance(p, dict) else p for p in config["plugins"]]
    assert not {"social", "privacy", "material/social", "material/privacy"} & set(plugins)
    assert config["theme"]["font"] is False
    assert config["strict"] is True
