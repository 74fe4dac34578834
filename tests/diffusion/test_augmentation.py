"""Random views of training slices: the whole slice is the area-averaged slice, a zoom scales a ramp's
slope by 1 / zoom, the intensity jitter stays in its bounds, and training draws the same views again."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medprior.diffusion import VPSchedule
from medprior.diffusion.augmentation import SliceAugmentation
from medprior.diffusion.priors import SlicePrior2D
from medprior.diffusion.training import TrainingConfig, train_prior

SOURCE = (64, 64)


def test_the_whole_slice_is_the_area_average():
    image = torch.rand((3, 1, *SOURCE), generator=torch.Generator().manual_seed(0)) * 2 - 1
    views = SliceAugmentation(SOURCE, zoom_range=(1, 1), rotate_deg=0, intensity=0)(image, (16, 16),
                                                                                    torch.Generator().manual_seed(1))
    assert torch.allclose(views, F.avg_pool2d(image, 4), atol=1e-6)


def test_a_zoom_divides_the_slope_of_a_ramp():
    ramp = torch.linspace(-1, 1, SOURCE[1] + 1)[:-1] + 1 / SOURCE[1]   # pixel centres of [-1, 1]
    image = (0.8 * ramp).expand(*SOURCE)[None, None].repeat(4, 1, 1, 1)
    for zoom in (1.0, 2.0, 3.0):
        views = SliceAugmentation(SOURCE, zoom_range=(zoom, zoom), rotate_deg=0, intensity=0)(
            image, (16, 16), torch.Generator().manual_seed(2))
        steps = views[..., 1:] - views[..., :-1]          # along the width: 0.8 * (2 / 16) / zoom per pixel
        assert torch.allclose(steps, torch.full_like(steps, 0.8 * 2 / 16 / zoom), atol=1e-5)
        assert torch.allclose(views[:, :, 1:], views[:, :, :-1], atol=1e-6)   # nothing along the height


def test_a_rotation_leaves_a_centred_disc_as_it_is():
    coordinates = torch.linspace(-1, 1, SOURCE[0] + 1)[:-1] + 1 / SOURCE[0]
    radius = torch.sqrt(coordinates[:, None] ** 2 + coordinates[None, :] ** 2)
    disc = torch.exp(-(radius / 0.4) ** 2)[None, None].repeat(8, 1, 1, 1)
    plain = SliceAugmentation(SOURCE, zoom_range=(1, 1), rotate_deg=0, intensity=0)(disc, (16, 16), torch.Generator())
    turned = SliceAugmentation(SOURCE, zoom_range=(1, 1), rotate_deg=180, intensity=0)(
        disc, (16, 16), torch.Generator().manual_seed(6))
    assert float((turned - plain).abs().max()) < 0.05          # bilinear resampling of a 16 x 16 view
    assert float((turned - plain).abs().mean()) < 0.005
    ramp = coordinates.expand(*SOURCE)[None, None].repeat(8, 1, 1, 1)
    turned_ramp = SliceAugmentation(SOURCE, zoom_range=(1, 1), rotate_deg=180, intensity=0)(
        ramp, (16, 16), torch.Generator().manual_seed(6))
    assert not torch.allclose(turned_ramp, F.avg_pool2d(ramp, 4), atol=0.1)   # a ramp does turn


def test_intensity_jitter_stays_within_its_bounds_and_draws_repeat():
    constant = torch.full((64, 1, *SOURCE), 0.3)
    augmentation = SliceAugmentation(SOURCE, zoom_range=(1, 4), rotate_deg=180, intensity=0.1)
    views = augmentation(constant, (16, 16), torch.Generator().manual_seed(4))
    per_view = views.flatten(1)
    assert torch.allclose(per_view, per_view[:, :1].expand_as(per_view), atol=1e-6)   # still constant
    values = per_view[:, 0]
    assert float((values - 0.3).abs().max()) <= 0.3 * 0.1 + 0.1 + 1e-6 and float(values.std()) > 0.01
    again = augmentation(constant, (16, 16), torch.Generator().manual_seed(4))
    assert torch.equal(views, again)


def test_whole_draws_are_the_plain_slice():
    image = torch.rand((200, 1, *SOURCE), generator=torch.Generator().manual_seed(8)) * 2 - 1
    views = SliceAugmentation(SOURCE, zoom_range=(2, 4), rotate_deg=90, intensity=0.1, whole=0.5)(
        image, (16, 16), torch.Generator().manual_seed(9))
    plain = [torch.allclose(v, p, atol=1e-6) for v, p in zip(views, F.avg_pool2d(image, 4))]
    assert 70 < sum(plain) < 130   # about half of the 200 draws
    none = SliceAugmentation(SOURCE, zoom_range=(2, 4), whole=0.0)(image[:20], (16, 16), torch.Generator())
    assert not any(torch.allclose(v, p, atol=1e-6) for v, p in zip(none, F.avg_pool2d(image[:20], 4)))


@pytest.mark.parametrize("bad", [{"zoom_range": (0.5, 2)}, {"zoom_range": (3, 2)}, {"rotate_deg": 200},
                                 {"intensity": 1.0}, {"whole": 1.5}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SliceAugmentation(SOURCE, **bad)


def test_training_with_augmentation_takes_finer_examples_and_resumes_bitwise(tmp_path):
    network = {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8}
    examples = torch.rand((6, 1, 32, 32), generator=torch.Generator().manual_seed(5)) * 2 - 1
    augmentation = {"source_size": [32, 32], "zoom_range": [1.0, 2.0]}

    def trained(workdir, steps):
        torch.manual_seed(0)
        prior = SlicePrior2D((16, 16), network=network, schedule=VPSchedule(steps=100))
        train_prior(prior, examples, TrainingConfig(steps=steps, batch_size=2, checkpoint_every=2, device="cpu",
                                                    augmentation=augmentation), workdir, progress=False)
        return prior.network.state_dict()

    whole = trained(tmp_path / "a", 4)
    trained(tmp_path / "b", 2)
    resumed = trained(tmp_path / "b", 4)
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    with pytest.raises(ValueError, match="do not fit"):
        prior = SlicePrior2D((16, 16), network=network, schedule=VPSchedule(steps=100))
        train_prior(prior, examples[:, :, :16, :16], TrainingConfig(steps=1, device="cpu", augmentation=augmentation),
                    tmp_path / "c", progress=False)
