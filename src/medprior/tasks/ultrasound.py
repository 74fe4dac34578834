"""Ultrasound files in, ultrasound files out: simulated hazy acquisitions and beamformed frames (zea HDF5).

- :func:`simulate_case`: one simulated apical view as a hazy acquisition (RF channel data of tissue
  plus ``gamma`` times haze, exact by linearity) and its truth (the tissue's channel data alone,
  with the region masks of the image grid under ``medprior/`` and the haze's scale). The scan
  settings go into both files' metadata (``scan``), so :func:`beamform_file` images them on the
  grid the masks were drawn on.
- :func:`beamform_file`: RF channel data -> beamformed, time-gain compensated RF on a polar grid
  (phased arrays, diverging waves: a file with negative ``focus_distances``, or one that names its
  scan) or on a Cartesian one (plane waves, e.g. PICMUS), as ``data/beamformed_data``
  ``(n_frames, n_r, n_lines)``; the grid's axes go into the metadata (``grid``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from medprior.checks import require_float, require_memory
from medprior.devices import resolve_device
from medprior.errors import InputError, ParameterError
from medprior.io.ultrasound import RFData, read_rf, read_zea, read_zea_derived, read_zea_extras, write_zea
from medprior.physics.beamform import delay_and_sum
from medprior.physics.image_grids import cartesian_grid
from medprior.tasks.cardiac_scan import HAZE_MODELS, REGIONS, CardiacScan
from medprior.tasks.echo_frames import beamform, haze_gain, simulate_frame


def _scan_record(scan: CardiacScan) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(scan).items()}


def simulate_case(seed: int, hazy_out: str | os.PathLike, truth_out: str | os.PathLike, *, haze: str = "multipath",
                  gamma: float = 0.5, scan: CardiacScan = CardiacScan(),
                  device: str | torch.device = "cpu") -> tuple[Path, Path]:
    """Write the hazy acquisition of apical view ``seed`` and its truth (see the module docstring).

    ``gamma`` is the haze-to-tissue RMS ratio of the beamformed RF in the sector
    (:func:`medprior.tasks.echo_frames.hazy_pair`); the haze's channel data are scaled to it before
    they are added to the tissue's.
    """
    if haze not in HAZE_MODELS:
        raise ParameterError("haze", f"expected one of {HAZE_MODELS}, got {haze!r}")
    if not gamma >= 0:  # before the simulation
        raise ParameterError("gamma", f"must be >= 0, got {gamma}")
    frame = simulate_frame(seed, scan, haze=haze, device=device)
    haze_scale = haze_gain(beamform(frame.tissue, scan), beamform(frame.haze, scan), gamma, frame.regions["sector"])
    info = {"seed": seed, "haze_model": haze, "gamma": gamma, "scan": _scan_record(scan)}
    hazy = dataclasses.replace(frame.tissue, raw_data=frame.tissue.raw_data + np.float32(haze_scale)
                               * frame.haze.raw_data, metadata={**frame.tissue.metadata, **info, "content": "hazy"})
    truth = dataclasses.replace(frame.tissue, metadata={**frame.tissue.metadata, **info, "content": "tissue"})
    return (write_zea(hazy, hazy_out),
            write_zea(truth, truth_out, extras={name: frame.regions[name] for name in REGIONS}))


def file_scan(rf: RFData, source: str | os.PathLike, **overrides: Any) -> CardiacScan:
    """The :class:`CardiacScan` a file was simulated with (its ``scan`` metadata), else the default one
    for its probe, with ``overrides`` (None: keep) on top."""
    recorded = rf.metadata.get("scan") or {}
    settings = {key: tuple(value) if isinstance(value, list) else value for key, value in recorded.items()}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return CardiacScan(**settings)
    except TypeError as error:
        raise InputError(source, f"medprior_metadata scan: {error}") from None


def is_sector_scan(rf: RFData) -> bool:
    """Diverging waves (``focus_distances < 0``): a phased array's sector, beamformed on a polar grid."""
    return bool(np.all(np.asarray(rf.focus_distances) < 0))


def _cartesian_grid(rf: RFData, depth: tuple[float, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """Pixel centres (n_z, n_x, 3) m over the aperture, one RF sample deep per row and as wide per column,
    and their axes for the metadata; refused up front when they would not fit in memory."""
    x = np.asarray(rf.probe_geometry)[:, 0]
    spacing = rf.sound_speed / (2 * rf.sampling_frequency)
    _require_grid_memory(rf, depth, spacing, (float(x.max()) - float(x.min())) / spacing + 1)
    grid = cartesian_grid((float(x.min()), float(x.max())), depth, spacing)
    axes = {"kind": "cartesian", "x": [float(grid[0, 0, 0]), spacing, grid.shape[1]],
            "z": [float(grid[0, 0, 2]), spacing, grid.shape[0]]}
    return grid, axes


def _require_grid_memory(rf: RFData, depth: tuple[float, float], spacing: float, n_lines: float) -> None:
    """Refuse an image grid whose pixels (about 128 bytes each while beamforming, 12 per frame kept)
    would not fit in memory, before any of it is made."""
    n_r = (depth[1] - depth[0]) / spacing + 1
    require_memory("scan", n_r * n_lines * (128 + 12 * rf.n_frames), f"a {n_r:.0f} x {n_lines:.0f} image grid")


def beamform_file(path: str | os.PathLike, out: str | os.PathLike, *, depth: tuple[float, float] | None = None,
                  sector_deg: float | None = None, lines: int | None = None, f_number: float | None = None,
                  device: str = "auto") -> Path:
    """Beamform every frame of an RF file (zea or PICMUS) into a zea file with ``data/beamformed_data``
    (see the module docstring); region masks of a simulated file come along when the grid is its own."""
    if f_number is not None:
        require_float("f_number", f_number, minimum=0, exclusive_minimum=True)
    rf = read_rf(path)
    if rf.is_iq:
        raise InputError(path, "beamform to RF needs RF channel data (1 channel); these are IQ")
    torch_device = resolve_device(device)
    extras = read_zea_extras(path) if Path(path).suffix.lower() in (".hdf5", ".h5") else {}
    if is_sector_scan(rf):
        scan = file_scan(rf, path, depth=depth, sector_deg=sector_deg, n_lines=lines, f_number=f_number)
        if scan.array.n_elements != rf.n_el:
            raise InputError(path, f"has {rf.n_el} elements; the {scan.probe} sector scan needs {scan.array.n_elements}")
        _require_grid_memory(rf, scan.depth, scan.sound_speed / (2 * scan.sampling_frequency), scan.n_lines)
        frames = [beamform(rf, scan, frame=f, device=torch_device) for f in range(rf.n_frames)]
        radii = scan.radii()
        grid = {"kind": "polar", "angles": [float(scan.angles[0]), float(scan.angles[-1]), scan.n_lines],
                "radii": [float(radii[0]), float(radii[1] - radii[0]), radii.size], "scan": _scan_record(scan)}
        same_grid = scan == file_scan(rf, path)
    else:
        if sector_deg is not None or lines is not None:
            raise ParameterError("sector_deg" if sector_deg is not None else "n_lines",
                                 "plane waves are beamformed on a Cartesian grid; --sector and --lines apply to "
                                 "sector scans (diverging waves)")
        span = depth or (5e-3, min(rf.depth, 60e-3))
        if not span[0] < span[1]:
            raise InputError(path, f"records {rf.depth * 1e3:.1f} mm of depth, short of the default image's 5 mm "
                                   "start; give --depth NEAR FAR (mm)")
        points, grid = _cartesian_grid(rf, span)
        frames = [delay_and_sum(torch.as_tensor(rf.raw_data[f, ..., 0], device=torch_device), rf.probe_geometry,
                                points, t0_delays=rf.t0_delays, tx_apodizations=rf.tx_apodizations,
                                initial_times=rf.initial_times, sampling_frequency=rf.sampling_frequency,
                                f_number=f_number or 1.5, sound_speed=rf.sound_speed) for f in range(rf.n_frames)]
        same_grid = False
    data = torch.stack(frames).cpu().numpy().astype(np.float32)
    metadata = {**rf.metadata, "grid": grid, "beamformed": "delay-and-sum, time-gain compensated" if is_sector_scan(rf)
                else "delay-and-sum"}
    kept = {name: mask for name, mask in extras.items() if name in REGIONS and same_grid}
    return write_zea(dataclasses.replace(rf, metadata=metadata), out, beamformed=data, extras=kept)


def read_beamformed(path: str | os.PathLike) -> tuple[Tensor, RFData, dict[str, np.ndarray]]:
    """The frames (n_frames, n_r, n_lines) float32 of a beamformed zea file, its acquisition and its extras."""
    rf = read_zea(path)
    derived = read_zea_derived(path)
    if "beamformed_data" not in derived:
        raise InputError(path, "data/beamformed_data: missing; run `medprior beamform` on the RF file first")
    data = np.asarray(derived["beamformed_data"], dtype=np.float32)
    if data.ndim != 3 or data.shape[0] < 1 or min(data.shape[1:]) < 2:
        raise InputError(path, f"data/beamformed_data: has shape {data.shape}; expected (n_frames, n_r, n_lines)")
    return torch.from_numpy(data), rf, read_zea_extras(path)
