"""Attack 5: a line lost from condor_vars.lst. When glidein_config cannot be written after
condor_vars.lst was, condor_vars.lst is put back; that used to happen outside the lock, so a
line another writer (a GlideinWMS script's ``add_condor_vars_line``) added meanwhile was lost.
Now condor_vars.lst stays locked from before it is read until it is put back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import make_work_dir

from glidein_plugins.errors import ConfigError
from glidein_plugins.protocol.glideinwms import advertise, condor_vars, glidein_config


def test_a_failed_publish_never_drops_another_writers_line(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    work = make_work_dir(tmp_path / "glidein")
    values = glidein_config.read(work / "glidein_config")
    vars_path = work / "condor_vars.lst"
    other = threading.Thread(target=condor_vars.update, args=(
        vars_path, [condor_vars.VarLine("OTHER_WRITER", "S")]))

    def failing_update(*args: object, **kwargs: object) -> list[str]:
        other.start()  # another writer, now: it must wait for the lock
        time.sleep(0.3)
        raise ConfigError(str(values.path), "disk full")

    monkeypatch.setattr(glidein_config, "update", failing_update)
    with pytest.raises(ConfigError, match="disk full"):
        advertise.write(values, vars_path, [condor_vars.VarLine("OURS", "S")], {"OURS": "1"},
                        wait=10)
    other.join(10)
    names = condor_vars.read_names(vars_path)
    assert "OTHER_WRITER" in names and "OURS" not in names
    assert not vars_path.with_name("condor_vars.lst.lock").exists()
