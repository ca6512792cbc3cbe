"""``--block-options``: a block type's options from the command line, over the preset's; bad ones are one line."""
from __future__ import annotations

import click
import pytest
from cli_runner import invoke
from ffneuro.cli.options import BlockOptions

from ffneuro.presets import resolve_config


def test_values_are_typed():
    got = BlockOptions().convert("pad_first=true;bias=false;norm=group;group_at=2,4;k=3;x=0.5", None, None)
    assert got == {"pad_first": True, "bias": False, "norm": "group", "group_at": [2, 4], "k": 3, "x": 0.5}
    with pytest.raises(click.BadParameter, match="is not name=value"):
        BlockOptions().convert("pad_first", None, None)


def test_given_options_go_over_the_presets_and_another_arch_drops_them():
    assert resolve_config("mnist-fast-deploy", {}).block_options == {"pad_first": True}
    assert resolve_config("mnist-fast-deploy", {"block_options": {"pad_first": False}}).block_options == {"pad_first": False}
    res = resolve_config("mnist-fast-deploy", {"arch": "residual", "block_options": {"norm": "layer"}})
    assert res.block_options == {"norm": "layer"}


def test_cli_refuses_an_unknown_option_in_one_line():
    result = invoke("profile", "--preset", "mnist-fast-deploy", "--block-options", "nope=1", "--hw", "loihi")
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and "takes no option nope; valid: pad_first" in lines[0]
