"""Ultrasound probes and transmits: element positions, presets, plane- and diverging-wave delays.

Coordinates are metres in the probe frame: ``x`` along the array (lateral), ``y`` elevation, ``z``
depth (into the body, > 0); the array lies on ``z = 0`` (linear) or on an arc behind it is not
modelled (the phased array is flat). Times are seconds, frequencies hertz, angles radians, the speed
of sound metres per second (1540 by default).

A transmit fires element ``e`` at ``t0_delays[e]`` after the transmit's start (all delays >= 0, the
first element at 0, as the zea format stores them). A plane wave at steering angle ``theta`` has a
wavefront that reaches point ``(x, z)`` at ``(x sin theta + z cos theta) / c`` (plus a constant); a
diverging wave from a virtual source behind the array at ``s`` reaches a point at ``|p - s| / c``
(minus the distance to the aperture). The presets follow the public specifications of Verasonics'
L11-4v (128 elements, 0.3 mm pitch, 5.2 MHz centre) and P4-2v (64 elements, 0.3 mm pitch, 2.7 MHz).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOUND_SPEED = 1540.0
"""Speed of sound in soft tissue, m/s (the beamformers' and the simulator's default)."""


@dataclass(frozen=True)
class Probe:
    """A flat 1D array of ``n_elements`` elements at ``pitch`` (m), centred on x = 0.

    Attributes:
        name: e.g. ``"L11-4v"``.
        n_elements, pitch: element count and centre-to-centre spacing (m).
        element_width: active width of one element (m), <= pitch (the kerf is the rest).
        center_frequency: transmit centre frequency (Hz).
        bandwidth: fractional -6 dB bandwidth of the pulse (e.g. 0.67).
        kind: ``"linear"`` (Cartesian imaging, plane waves) or ``"phased"`` (sector imaging, diverging waves).
    """

    name: str
    n_elements: int
    pitch: float
    element_width: float
    center_frequency: float
    bandwidth: float
    kind: str

    def __post_init__(self) -> None:
        if self.n_elements < 1 or not 0 < self.element_width <= self.pitch:
            raise ValueError(f"probe {self.name}: need n_elements >= 1 and 0 < element_width <= pitch, got "
                             f"{self.n_elements}, {self.element_width}, {self.pitch}")
        if self.kind not in ("linear", "phased"):
            raise ValueError(f"probe {self.name}: kind must be 'linear' or 'phased', got {self.kind!r}")

    @property
    def aperture(self) -> float:
        """Distance between the first and the last element centres (m)."""
        return (self.n_elements - 1) * self.pitch

    def element_positions(self) -> np.ndarray:
        """Element centres ``(n_elements, 3)`` in m: x from ``-aperture / 2`` to ``+aperture / 2``, y = z = 0."""
        positions = np.zeros((self.n_elements, 3))
        positions[:, 0] = (np.arange(self.n_elements) - (self.n_elements - 1) / 2) * self.pitch
        return positions

    def wavelength(self, sound_speed: float = SOUND_SPEED) -> float:
        """The wavelength at the centre frequency (m)."""
        return sound_speed / self.center_frequency


PROBES = {
    "L11-4v": Probe("L11-4v", 128, 0.3e-3, 0.27e-3, 5.2083e6, 0.67, "linear"),
    "P4-2v": Probe("P4-2v", 64, 0.3e-3, 0.25e-3, 2.7e6, 0.74, "phased"),
}
"""Probe presets by name."""


def plane_wave_delays(positions: np.ndarray, angle: float, sound_speed: float = SOUND_SPEED) -> np.ndarray:
    """Firing delays (s) of a plane wave steered by ``angle`` (rad, positive towards +x) from elements at
    ``positions`` (n, 3) m: ``(x sin(angle) + z cos(angle)) / c``, shifted so that the first to fire is at 0."""
    positions = np.asarray(positions, dtype=np.float64)
    delays = (positions[:, 0] * np.sin(angle) + positions[:, 2] * np.cos(angle)) / sound_speed
    return delays - delays.min()


def diverging_wave_delays(positions: np.ndarray, virtual_source: np.ndarray,
                          sound_speed: float = SOUND_SPEED) -> np.ndarray:
    """Firing delays (s) of a diverging wave from a virtual source (3,) m behind the array (z < 0): each
    element fires when a spherical wave from the source would pass it, ``|p_e - s| / c``, shifted so that
    the first to fire is at 0."""
    positions = np.asarray(positions, dtype=np.float64)
    source = np.asarray(virtual_source, dtype=np.float64)
    if source.shape != (3,) or not source[2] < 0:
        raise ValueError(f"a diverging wave needs a virtual source (x, y, z) behind the array (z < 0), got {source}")
    delays = np.linalg.norm(positions - source, axis=1) / sound_speed
    return delays - delays.min()


def virtual_source(probe: Probe, angle: float, opening: float = np.deg2rad(90)) -> np.ndarray:
    """The virtual source (3,) m of a diverging wave covering ``opening`` (rad) around ``angle``: on the
    line through the aperture centre at ``angle`` from the z axis, far enough behind the array that the
    aperture subtends ``opening`` (``(aperture / 2) / tan(opening / 2)`` behind it)."""
    if not 0 < opening < np.pi:
        raise ValueError(f"opening must lie in (0, pi) rad, got {opening}")
    depth = (probe.aperture / 2) / np.tan(opening / 2)
    return np.array([-depth * np.sin(angle), 0.0, -depth * np.cos(angle)])
