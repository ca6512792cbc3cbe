"""The torch-free name tables the config checks against (ffneuro.catalog) equal the torch-backed registries,
and importing the config loads no torch."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

from ffneuro.catalog import GOODNESS_PER_CLASS, LABEL_SCHEMES, LOSS_INFO, OPTIMIZER_NAMES, LossInfo
from ffneuro.goodness import GOODNESS, LOSSES
from ffneuro.labels import LABELS
from ffneuro.units import OPTIMIZERS


def test_each_table_names_exactly_what_its_registry_registers():
    assert sorted(GOODNESS_PER_CLASS) == GOODNESS.names()
    assert sorted(LOSS_INFO) == LOSSES.names()
    assert sorted(LABEL_SCHEMES) == LABELS.names()
    assert sorted(OPTIMIZER_NAMES) == OPTIMIZERS.names()


def test_goodness_kinds_and_loss_descriptions_agree_with_the_registries():
    assert {n: GOODNESS.get(n).per_class for n in GOODNESS} == dict(GOODNESS_PER_CLASS)
    for name in LOSSES:
        loss = LOSSES.get(name)
        assert {f.name: getattr(loss, f.name) for f in fields(LossInfo)} == \
            {f.name: getattr(LOSS_INFO[name], f.name) for f in fields(LossInfo)}


def test_importing_the_config_loads_no_torch():
    code = "import sys, ffneuro.config; assert 'torch' not in sys.modules, 'ffneuro.config imported torch'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
