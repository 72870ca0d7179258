"""The `neurodec backbones list` command."""

from __future__ import annotations

from typer.testing import CliRunner

from neurodec.cli import app


def test_list_shows_names_sources_and_default_layers():
    result = CliRunner().invoke(app, ["backbones", "list", "torchvision/*"])
    assert result.exit_code == 0, result.output
    assert "torchvision/alexnet\ttorchvision\t" in result.output
    assert "default layers: features.1, features.4, features.7" in result.output
    assert "timm/" not in result.output


def test_list_layers_builds_the_model_to_list_every_module():
    result = CliRunner().invoke(app, ["backbones", "list", "timm/convnext_atto", "--layers"])
    assert result.exit_code == 0, result.output
    assert "    stages.0.blocks.0.conv_dw\n" in result.output and "    output\n" in result.output


def test_list_resolves_library_names_and_reports_unknown_ones():
    result = CliRunner().invoke(app, ["backbones", "list", "timm/resnet18.tv_in1k"])
    assert result.exit_code == 0 and "derived from the model" in result.output
    result = CliRunner().invoke(app, ["backbones", "list", "timm/resnet5"])
    assert result.exit_code == 1 and "Close matches: resnet50" in result.output
