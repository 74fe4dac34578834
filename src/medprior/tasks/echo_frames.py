"""Simulated echocardiography frames: tissue and haze channel data, beamformed RF, hazy / clean pairs.

A :class:`~medprior.tasks.cardiac_scan.CardiacScan` is the acquisition: a phased array (P4-2v by
default), diverging waves, a sector of ``n_lines`` lines on a polar grid sampled at the RF sampling
interval along depth (so the beamformed RF keeps its oscillation). A frame (:func:`simulate_frame`)
is a schematic apical view (:func:`medprior.phantoms.ultrasound.apical_view`) turned into about 10
scatterers per resolution cell, and the haze of one model (:mod:`medprior.physics.haze`), each simulated as its own RF
acquisition, so that tissue and haze are known apart. :func:`beamform` makes beamformed RF on the
polar grid with time-gain compensation (the round-trip attenuation and the spherical spreading
undone, so uniform tissue is uniformly bright at every depth).

The hazy frame is ``y = x + gamma h~`` on beamformed RF, where ``h~`` is the haze scaled to the
tissue's RMS in the sector (so ``gamma`` is the haze-to-tissue RMS ratio). Priors and dehazing work
on companded images (mu-law, :func:`medprior.physics.beamform.compand`) of RF divided by the hazy
frame's largest magnitude, ``scale = max |y|``: ``C(y / scale)`` in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from medprior.diffusion.patches import extract, patch_corners
from medprior.errors import ParameterError
from medprior.io.ultrasound import RFData
from medprior.phantoms.ultrasound import EchoMap, apical_view, draw_scatterers, resolution_cell_area
from medprior.physics.beamform import compand, delay_and_sum
from medprior.physics.echoes import simulate_rf
from medprior.physics.haze import multipath_scatterers, reverberation_scatterers
from medprior.tasks.cardiac_scan import HAZE_MODELS, REGIONS, CardiacScan

@dataclass
class EchoFrame:
    """One simulated frame: the tissue's and the haze's channel data, the echogenicity map and the
    regions on the image grid (boolean (n_r, n_lines), :data:`REGIONS`)."""

    tissue: RFData
    haze: RFData
    echo_map: EchoMap
    regions: dict[str, np.ndarray] = field(default_factory=dict)


def acquire(scan: CardiacScan, scatterers: np.ndarray, amplitudes: np.ndarray, *, device: str | torch.device = "cpu",
            metadata: dict | None = None) -> RFData:
    """RF channel data (one frame) of point scatterers (N, 3) m with reflectivities (N,) under ``scan``."""
    probe, scheme = scan.array, scan.transmit_scheme()
    positions = probe.element_positions()
    rf = simulate_rf(positions, scatterers, amplitudes, t0_delays=scheme["t0_delays"],
                     tx_apodizations=scheme["tx_apodizations"], initial_times=scheme["initial_times"],
                     sampling_frequency=scan.sampling_frequency, center_frequency=probe.center_frequency,
                     n_ax=scan.n_ax(), bandwidth=probe.bandwidth, element_width=probe.element_width,
                     attenuation=scan.attenuation, sound_speed=scan.sound_speed, device=device)
    return RFData(raw_data=rf.cpu().numpy()[None, ..., None], probe_geometry=positions,
                  sampling_frequency=scan.sampling_frequency, center_frequency=probe.center_frequency,
                  demodulation_frequency=0.0, sound_speed=scan.sound_speed,
                  metadata={"probe": probe.name, **(metadata or {})}, **scheme)


def haze_scatterers(model: str, scan: CardiacScan, scatterers: np.ndarray, amplitudes: np.ndarray,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The haze scatterers of ``model`` (:data:`HAZE_MODELS`) for a frame's tissue scatterers."""
    if model == "multipath":
        return multipath_scatterers(scatterers, amplitudes, rng=rng, near_field=scan.depth[0] + 12e-3,
                                    max_depth=scan.depth[1])
    if model == "reverberation":
        layers = np.sort(rng.uniform(3e-3, 16e-3, 3))
        reflectivities = rng.uniform(0.35, 0.6, 3)
        width = 2 * scan.depth[1] * np.sin(np.deg2rad(scan.sector_deg) / 2)
        return reverberation_scatterers(layers, reflectivities, rng=rng, width=width, max_depth=scan.depth[1])
    raise ParameterError("haze", f"unknown haze model {model!r}; expected one of {HAZE_MODELS}")


def simulate_frame(seed: int, scan: CardiacScan = CardiacScan(), *, haze: str = "multipath",
                   device: str | torch.device = "cpu") -> EchoFrame:
    """A frame of the apical view of ``seed``: tissue and ``haze`` channel data (see the module docstring)."""
    rng = np.random.default_rng(seed)
    echo_map = apical_view(seed, depth=scan.depth, sector_deg=scan.sector_deg, scale=scan.anatomy_scale)
    probe = scan.array
    cell = resolution_cell_area(probe.wavelength(scan.sound_speed), probe.bandwidth, scan.f_number)
    scatterers, amplitudes = draw_scatterers(echo_map, cell_area=cell, per_cell=scan.per_cell,
                                             seed=int(rng.integers(2 ** 31)))
    haze_points, haze_amplitudes = haze_scatterers(haze, scan, scatterers, amplitudes, rng)
    info = {"seed": seed, "haze_model": haze}
    grid = scan.grid()
    return EchoFrame(tissue=acquire(scan, scatterers, amplitudes, device=device, metadata={**info, "content": "tissue"}),
                     haze=acquire(scan, haze_points, haze_amplitudes, device=device,
                                  metadata={**info, "content": "haze"}),
                     echo_map=echo_map, regions={name: echo_map.region_at(name, grid) for name in REGIONS})


def time_gain(radii: np.ndarray, center_frequency: float, attenuation: float) -> np.ndarray:
    """Gain (n_r,) undoing the round-trip attenuation (``attenuation`` dB / (cm MHz)) and the spherical
    spreading of echoes from ``radii`` (m), 1 at the first radius."""
    loss_db = attenuation * center_frequency / 1e6 * 2 * radii * 100
    gain = 10 ** (loss_db / 20) * radii
    return gain / gain[0]


def beamform(rf: RFData, scan: CardiacScan, *, frame: int = 0, device: str | torch.device = "cpu") -> Tensor:
    """Beamformed, time-gain compensated RF (n_r, n_lines) float32 of one frame of ``rf`` on ``scan``'s grid."""
    if rf.is_iq:
        raise ParameterError("rf", "beamforming to RF needs RF channel data; these are IQ")
    channels = torch.as_tensor(rf.raw_data[frame, ..., 0], device=device)
    image = delay_and_sum(channels, rf.probe_geometry, scan.grid(), t0_delays=rf.t0_delays,
                          tx_apodizations=rf.tx_apodizations, initial_times=rf.initial_times,
                          sampling_frequency=rf.sampling_frequency, f_number=scan.f_number,
                          sound_speed=rf.sound_speed)
    gain = torch.as_tensor(time_gain(scan.radii(), rf.center_frequency, scan.attenuation), dtype=image.dtype,
                           device=image.device)
    return image * gain[:, None]


def rms(image: Tensor, region: np.ndarray) -> float:
    """Root mean square of ``image`` over the boolean ``region``."""
    values = image[torch.as_tensor(region, device=image.device)]
    return float(values.double().pow(2).mean().sqrt())


def haze_gain(tissue: Tensor, haze: Tensor, gamma: float, sector: np.ndarray) -> float:
    """The factor that brings ``haze``'s RMS in the ``sector`` to ``gamma`` times ``tissue``'s (the same
    for beamformed RF and, by linearity, for channel data)."""
    if not gamma >= 0:
        raise ParameterError("gamma", f"must be >= 0, got {gamma}")
    return gamma * rms(tissue, sector) / max(rms(haze, sector), 1e-30)


def prior_scale(hazy: Tensor) -> float:
    """The scale a frame's images are companded with for the priors: the hazy frame's largest magnitude."""
    return float(hazy.abs().max().clamp_min(1e-30))


def to_prior(rf: Tensor, scale: float) -> Tensor:
    """``C(rf / scale)`` in [-1, 1]: beamformed RF as the priors see it."""
    return compand(rf / scale).clamp(-1, 1)


def hazy_pair(tissue: Tensor, haze: Tensor, gamma: float, sector: np.ndarray) -> dict[str, Tensor | float]:
    """``y = x + gamma h~`` (see the module docstring) and its companded parts.

    Returns ``hazy``, ``tissue``, ``haze`` (``gamma h~``) as beamformed RF, ``scale`` (``max |y|``) and
    ``companded``: (3, n_r, n_lines) ``C(y / scale), C(x / scale), C(gamma h~ / scale)``.
    """
    scaled_haze = haze * haze_gain(tissue, haze, gamma, sector)
    hazy = tissue + scaled_haze
    scale = prior_scale(hazy)
    companded = to_prior(torch.stack([hazy, tissue, scaled_haze]), scale)
    return {"hazy": hazy, "tissue": tissue, "haze": scaled_haze, "scale": scale, "companded": companded}


def frame_gamma(seed: int, gamma_range: tuple[float, float]) -> float:
    """The haze strength of frame ``seed``, drawn uniformly from ``gamma_range`` (fixed by the seed)."""
    low, high = gamma_range
    if not 0 <= low <= high:
        raise ParameterError("gamma", f"need a range 0 <= low <= high, got {gamma_range}")
    return float(np.random.default_rng([seed, 1]).uniform(low, high))


ECHO_CONDITIONS = ("hazy", "depth")
"""What an echo prior may be conditioned on (``data.conditions``): the hazy frame (the supervised
network) and each pixel's depth (:func:`depth_channel`)."""


def depth_channel(shape: tuple[int, int]) -> Tensor:
    """(1, n_r, n_lines): each row's depth in the frame, from -1 at its first radius to 1 at its last:
    the condition that tells a patch prior where in the frame its patch lies (the multipath haze is
    strongest in the near field, :mod:`medprior.physics.haze`). Relative to the frame's depth range,
    which is the training frames' for frames of the same scan."""
    return torch.linspace(-1, 1, shape[0])[None, :, None].expand(1, *shape).contiguous()


def training_patches(seed: int, *, haze: str, gamma_range: tuple[float, float], size: tuple[int, int],
                     stride: tuple[int, int], scan: CardiacScan = CardiacScan()) -> dict[str, Tensor]:
    """Patches (P, h, w) of ``size`` every ``stride`` of frame ``seed``'s companded ``hazy``, ``tissue`` and
    ``haze`` images (:func:`hazy_pair` at :func:`frame_gamma`) and of its ``depth``
    (:func:`depth_channel`), the same corners in each."""
    frame = simulate_frame(seed, scan, haze=haze)
    pair = hazy_pair(beamform(frame.tissue, scan), beamform(frame.haze, scan), frame_gamma(seed, gamma_range),
                     frame.regions["sector"])
    images = torch.cat([pair["companded"], depth_channel(tuple(pair["companded"].shape[1:]))])
    corners = patch_corners(images.shape[1:], size, stride)
    return {name: extract(images[i:i + 1], corners, size)[:, 0]
            for i, name in enumerate(("hazy", "tissue", "haze", "depth"))}
