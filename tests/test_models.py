"""Parameter counts of docs/workloads.md and state-dict compatibility with torchvision."""

from __future__ import annotations

import torch

from bench.models.resnet import resnet34, resnet50
from bench.workloads import count_parameters


def test_resnet34_100_classes_parameter_count():
    assert count_parameters(resnet34(num_classes=100)) == 21_335_972


def test_resnet_matches_torchvision_reference_counts():
    # torchvision's published counts for the 1000-class models
    assert count_parameters(resnet34()) == 21_797_672
    assert count_parameters(resnet50()) == 25_557_032


def test_resnet34_state_dict_uses_torchvision_names():
    sd = resnet34(num_classes=100).state_dict()
    assert len(sd) == 218  # torchvision resnet34: 110 params + 108 BN buffers
    assert sd["fc.weight"].shape == (100, 512)
    assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert sd["layer4.2.bn2.running_var"].shape == (512,)
    assert "layer3.5.conv2.weight" in sd and "layer3.6.conv1.weight" not in sd


def test_resnet34_forward_shape():
    model = resnet34(num_classes=100).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 100)
