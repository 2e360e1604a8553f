"""Every architecture ends in global average pooling and one linear layer (exact Grad-CAM)."""

import pytest
import torch

from argus_kit import augment, nets
from argus_kit.export import cam_from_outputs


@pytest.mark.parametrize("arch,shape", [
    ("compact", (2, 1, 64, 64)), ("compact3d", (2, 1, 8, 32, 32)),
    ("resnet50", (1, 1, 64, 64)), ("densenet121", (1, 1, 64, 64)),
])
def test_logits_are_a_linear_head_over_pooled_features(arch, shape):
    torch.manual_seed(0)
    model = nets.build(arch, 3).eval()
    with torch.no_grad():
        logits, features = model(torch.randn(*shape))
        pooled = features.flatten(2).mean(dim=2)
        expected = pooled @ nets.head_weights(model).T + model.head.linear.bias
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    cam = cam_from_outputs(features.numpy(), nets.head_weights(model).detach().numpy(), 1)
    assert cam.shape == (shape[0],) + tuple(features.shape[2:]) and (cam >= 0).all()


def test_augmentation_keeps_shape_and_never_flips_vertically():
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, :8] = 1.0  # a bright top band must stay at the top
    out = augment.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert (out[:, :, :8].mean(dim=(1, 2, 3)) > out[:, :, -8:].mean(dim=(1, 2, 3))).all()


def test_balanced_batches():
    labels = torch.tensor([0] * 90 + [1] * 10).numpy()
    batches = list(augment.BalancedBatchSampler(labels, 32, seed=0))
    assert len(batches) == 4
    for b in batches:
        assert sum(labels[b]) == 16
