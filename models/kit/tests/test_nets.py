"""Every architecture ends in global average pooling and one linear layer (exact Grad-CAM)."""

import pytest
import torch

from argus_kit import augment, nets, train
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


def test_compact_2d_features_are_a_quarter_of_the_input():
    _, features = nets.build("compact", 2).eval()(torch.zeros(1, 1, 128, 128))
    assert tuple(features.shape[2:]) == (32, 32)


def test_masks_follow_the_image_augmentation():
    x = torch.zeros(16, 1, 32, 32)
    x[:, :, 4:10, 20:28] = 1.0
    images, masks = augment.augment(x, torch.Generator().manual_seed(0), x.clone())
    lo, hi = images.amin(dim=(2, 3), keepdim=True), images.amax(dim=(2, 3), keepdim=True)
    moved = images > (lo + hi) / 2  # brightness and contrast leave the box's outline in place
    assert ((masks > 0.5) == moved).float().mean() > 0.97


def test_localization_loss_is_lower_when_the_map_peaks_on_the_mask():
    model = nets.build("compact", 2)
    with torch.no_grad():
        model.head.linear.weight.copy_(torch.tensor([[0.0] * 31 + [-1.0], [0.0] * 31 + [1.0]]))
    masks = torch.zeros(1, 1, 128, 128)
    masks[:, :, 8:16, 8:16] = 1.0
    on, off = torch.zeros(1, 32, 32, 32), torch.zeros(1, 32, 32, 32)
    on[0, 31, 2:4, 2:4], off[0, 31, 20:22, 20:22] = 5.0, 5.0
    y = torch.tensor([1])
    assert train.localization_loss(model, on, y, masks) < train.localization_loss(model, off, y, masks)
    assert train.localization_loss(model, on, torch.tensor([0]), masks) == 0
