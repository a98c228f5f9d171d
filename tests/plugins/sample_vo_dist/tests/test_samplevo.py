"""The Sample VO plugin's own tests, written against the plugin-author kit: the fixtures
(``fake_cvmfs``, ``fake_runtime``, ``run_phases``, ...) come from ``glidein_plugins.testing``,
which pytest loads through its ``pytest11`` entry point: no conftest.py is needed."""

from __future__ import annotations

import glidein_plugins_samplevo as samplevo
import pytest

PREFERRED = {"GLIDEIN_Singularity_Use": "PREFERRED", "GLIDEIN_Site": "Sample_Site"}


@pytest.fixture
def node(fake_cvmfs):
    """A node with a working fake Apptainer, the OSG images and the VO's CVMFS repository."""
    fake_cvmfs.bin.install_runtime("apptainer")
    fake_cvmfs.add_image(f"{samplevo.REPOSITORY}/images/el9")
    return fake_cvmfs


def attributes(report) -> dict[str, str]:
    return {attr.name: attr.value for attr in report.attributes}


# the plugin under test given as its module, or by the name of its installed entry point
@pytest.mark.parametrize("plugin", [samplevo, "samplevo"], ids=["module", "entry point"])
def test_the_vo_image_is_offered_and_the_node_advertised(run_phases, node, plugin) -> None:
    report = run_phases(plugin, glidein_config=PREFERRED, environ=node.env())
    assert report.failure is None, report.trace
    image = str(node.root / samplevo.REPOSITORY / "images" / "el9")
    assert ("rhel9", image) in [(item.platform, item.uri) for item in report.facts.images]
    assert report.facts.has_singularity
    assert attributes(report)["SAMPLEVO_READY"] == "True"
    assert attributes(report)["SAMPLEVO_SITE"] == "Sample_Site"


def test_the_entry_settings_win(run_phases, node) -> None:
    report = run_phases(samplevo, glidein_config=PREFERRED, environ=node.env(),
                        settings={"site": "From_Factory", "image": "/elsewhere/el9"})
    assert attributes(report)["SAMPLEVO_SITE"] == "From_Factory"
    assert ("rhel9", "/elsewhere/el9") in [(i.platform, i.uri) for i in report.facts.images]


def test_a_node_without_the_repository_is_not_ready(run_phases, fake_cvmfs) -> None:
    report = run_phases(samplevo, glidein_config=PREFERRED, environ=fake_cvmfs.env())
    assert report.failure is None, report.trace
    assert attributes(report)["SAMPLEVO_READY"] == "False"
    assert not report.facts.has_singularity  # no runtime on this node
