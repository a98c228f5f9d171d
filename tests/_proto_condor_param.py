"""Print, as JSON, HTCondor's own reading of config names: ``python _proto_condor_param.py NAME...``
with ``CONDOR_CONFIG`` naming the config file (a missing name reads as null)."""

from __future__ import annotations

import json
import sys

import htcondor2

htcondor2.reload_config()
print(json.dumps({name: htcondor2.param.get(name) for name in sys.argv[1:]}))
