"""The acquisition of the simulated echocardiography frames (:mod:`medprior.tasks.echo_frames`): the
phased-array sector scan, the haze models and the regions scored. NumPy only, so that the CLI reads
its defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medprior.errors import ParameterError
from medprior.physics.image_grids import polar_grid
from medprior.physics.probes import PROBES, SOUND_SPEED, Probe, diverging_wave_delays, virtual_source

HAZE_MODELS = ("multipath", "reverberation")
"""The haze models: multipath clutter (Byram and Shu) and chest-wall reverberation."""
REGIONS = ("ventricle", "septum", "myocardium", "sector")


@dataclass(frozen=True)
class CardiacScan:
    """A sector scan of the heart with a phased array.

    Attributes:
        probe: a preset of :data:`medprior.physics.probes.PROBES`.
        depth: (near, far) of the image (m).
        sector_deg: the sector's opening angle (degrees); ``n_lines`` image lines across it.
        anatomy_scale: lengths of the apical view against an adult heart's.
        transmits: diverging waves, steered evenly across the middle half of the sector, compounded.
        sampling_factor: RF sampling frequency over the centre frequency.
        attenuation: dB / (cm MHz).
        per_cell: scatterers per resolution cell.
        f_number: of the receive apodisation.
    """

    probe: str = "P4-2v"
    depth: tuple[float, float] = (5e-3, 85e-3)
    sector_deg: float = 70.0
    n_lines: int = 80
    anatomy_scale: float = 0.7
    transmits: int = 3
    sampling_factor: float = 4.0
    attenuation: float = 0.5
    per_cell: float = 10.0
    f_number: float = 1.0
    sound_speed: float = SOUND_SPEED

    def __post_init__(self) -> None:
        if self.probe not in PROBES or PROBES[self.probe].kind != "phased":
            raise ParameterError("probe", f"a cardiac scan needs a phased array, one of "
                                          f"{[n for n, p in PROBES.items() if p.kind == 'phased']}; got {self.probe!r}")
        if not (0 < self.depth[0] < self.depth[1] and 0 < self.sector_deg < 180 and self.n_lines >= 2
                and self.transmits >= 1 and self.sampling_factor >= 2):
            raise ParameterError("scan", "needs 0 < near < far depth, a sector in (0, 180) degrees, >= 2 lines, "
                                         ">= 1 transmit and a sampling factor >= 2")

    @property
    def array(self) -> Probe:
        return PROBES[self.probe]

    @property
    def sampling_frequency(self) -> float:
        return self.sampling_factor * self.array.center_frequency

    @property
    def angles(self) -> np.ndarray:
        """Image line angles (n_lines,) rad."""
        half = np.deg2rad(self.sector_deg) / 2
        return np.linspace(-half, half, self.n_lines)

    def grid(self) -> np.ndarray:
        """Pixel centres (n_r, n_lines, 3) m: radii every ``c / (2 fs)`` (one RF sample) over ``depth``."""
        return polar_grid((self.angles[0], self.angles[-1]), self.depth, self.n_lines,
                          self.sound_speed / (2 * self.sampling_frequency))

    def radii(self) -> np.ndarray:
        """The grid's radii (n_r,) m."""
        return np.linalg.norm(self.grid()[:, 0], axis=-1)

    def transmit_scheme(self) -> dict[str, np.ndarray]:
        """The diverging waves' ``t0_delays``, ``tx_apodizations``, ``initial_times``, ``focus_distances``,
        ``transmit_origins`` and ``polar_angles`` (the fields of :class:`medprior.io.ultrasound.RFData`)."""
        probe, positions = self.array, self.array.element_positions()
        steer = np.deg2rad(self.sector_deg) / 4
        angles = np.linspace(-steer, steer, self.transmits) if self.transmits > 1 else np.zeros(1)
        sources = [virtual_source(probe, a, opening=np.deg2rad(self.sector_deg)) for a in angles]
        return {"t0_delays": np.stack([diverging_wave_delays(positions, s, self.sound_speed) for s in sources]),
                "tx_apodizations": np.ones((angles.size, probe.n_elements)),
                "initial_times": np.zeros(angles.size),
                "focus_distances": -np.array([np.linalg.norm(s) for s in sources]),
                "transmit_origins": np.zeros((angles.size, 3)), "polar_angles": angles}

    def n_ax(self) -> int:
        """Samples per channel: the round trip to the far depth and back from the widest element, plus 5 %."""
        far = np.hypot(self.depth[1], self.array.aperture)
        return int(np.ceil(1.05 * 2 * far / self.sound_speed * self.sampling_frequency))
