"""Ultrasound channel data (RF or IQ) in two public HDF5 layouts: zea (read and write) and PICMUS (read).

Units: metres, seconds, hertz, radians, metres per second (as :mod:`medprior.physics.probes`).
In memory, :class:`RFData` holds one acquisition: ``raw_data`` float32
``(n_frames, n_tx, n_ax, n_el, n_ch)``, frames x transmits x axial samples x elements x channels,
where ``n_ch`` is 1 for RF and 2 for IQ (I, Q, demodulated at ``demodulation_frequency``).

zea (the format of the zea toolbox, formerly usbmd)::

    /            attrs: description, probe (name, when known), medprior_metadata (JSON)
    /data        raw_data (n_frames, n_tx, n_ax, n_el, n_ch); optional derived arrays
                 beamformed_data, envelope_data, image (as the writer gave them)
    /medprior    optional: medprior's own arrays (region masks, a haze estimate)
    /scan        probe_geometry (n_el, 3), sampling_frequency, center_frequency,
                 demodulation_frequency (0 for RF), initial_times (n_tx,), t0_delays (n_tx, n_el),
                 tx_apodizations (n_tx, n_el), focus_distances (n_tx,) (0 plane wave, < 0 diverging),
                 transmit_origins (n_tx, 3), polar_angles (n_tx,), sound_speed, n_ax, n_el, n_tx, n_frames

Older zea files without ``scan/demodulation_frequency`` (RF only) or ``scan/transmit_origins``
(taken as zeros) are read as well.

PICMUS (the IUS 2016 plane-wave challenge, written by the USTB), one group ``US/US_DATASET0000``
with ``data/real`` and ``data/imag`` ``(n_tx, n_el, n_ax)``, ``angles`` (n_tx,) rad,
``probe_geometry`` (3, n_el) m, ``sampling_frequency``, ``modulation_frequency`` (> 0: IQ),
``pulse_frequency`` (optional), ``sound_speed`` and ``initial_time`` (scalar or (n_tx,)) s.

Every reader raises :class:`~medprior.errors.InputError` in one line naming the file and the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from medprior.checks import count_nonfinite, require_finite_output
from medprior.errors import InputError
from medprior.io.atomic import atomic_path
from medprior.io.hdf5 import json_attribute, read_hdf5

SOUND_SPEED = 1540.0  # m/s, as medprior.physics.probes (not imported here: the physics package imports torch)
ZEA_DESCRIPTION = "Ultrasound channel data in the zea format, written by medprior"
DERIVED = ("beamformed_data", "envelope_data", "image")
"""The optional derived datasets of a zea file's ``data`` group."""
EXTRAS = "medprior"
"""The group of medprior's own arrays in a zea file (region masks, haze estimates)."""
PICMUS_GROUP = "US/US_DATASET0000"
HDF5_SUFFIXES = (".hdf5", ".h5")

_PER_TRANSMIT = {"initial_times": (), "focus_distances": (), "polar_angles": (), "t0_delays": ("n_el",),
                 "tx_apodizations": ("n_el",), "transmit_origins": (3,)}
_SCALARS = ("sampling_frequency", "center_frequency", "demodulation_frequency", "sound_speed")


@dataclass(frozen=True, eq=False)
class RFData:
    """One ultrasound acquisition: channel data and the transmit scheme that made it.

    Attributes:
        raw_data: float32 ``(n_frames, n_tx, n_ax, n_el, n_ch)``; ``n_ch`` 1 = RF, 2 = IQ (I, Q).
        probe_geometry: element centres ``(n_el, 3)`` m.
        sampling_frequency, center_frequency: Hz.
        demodulation_frequency: Hz, 0 for RF data.
        initial_times: ``(n_tx,)`` s, time of each transmit's first sample.
        t0_delays: ``(n_tx, n_el)`` s, each element's firing delay.
        tx_apodizations: ``(n_tx, n_el)`` transmit weights.
        focus_distances: ``(n_tx,)`` m; 0 plane wave, < 0 diverging wave, > 0 focused.
        transmit_origins: ``(n_tx, 3)`` m.
        polar_angles: ``(n_tx,)`` rad, steering angles.
        sound_speed: m/s.
        metadata: JSON-able extras (``probe``, ``description``, ...).
    """

    raw_data: np.ndarray
    probe_geometry: np.ndarray
    sampling_frequency: float
    center_frequency: float
    demodulation_frequency: float
    initial_times: np.ndarray
    t0_delays: np.ndarray
    tx_apodizations: np.ndarray
    focus_distances: np.ndarray
    transmit_origins: np.ndarray
    polar_angles: np.ndarray
    sound_speed: float = SOUND_SPEED
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.raw_data.shape[0])

    @property
    def n_tx(self) -> int:
        return int(self.raw_data.shape[1])

    @property
    def n_ax(self) -> int:
        return int(self.raw_data.shape[2])

    @property
    def n_el(self) -> int:
        return int(self.raw_data.shape[3])

    @property
    def is_iq(self) -> bool:
        return int(self.raw_data.shape[4]) == 2

    @property
    def depth(self) -> float:
        """Axial span of the recorded samples (m): ``n_ax / sampling_frequency * sound_speed / 2``.
        It leaves out ``initial_times`` (the samples start at ``initial_times * sound_speed / 2``)."""
        return self.n_ax / self.sampling_frequency * self.sound_speed / 2

    def check(self, source: str | os.PathLike | None, keys: dict[str, str] | None = None) -> None:
        """Check shapes, frequencies and finiteness.

        Args:
            source: the file (or other source) named in the error.
            keys: the field names as the source spells them (``{"raw_data": "data/raw_data"}``).

        Raises:
            InputError: ``source`` and the field at fault, in one line.
        """
        keys = keys or {}

        def fail(name: str, problem: str) -> None:
            raise InputError(source, f"{keys.get(name, name)}: {problem}")

        raw = self.raw_data
        if not isinstance(raw, np.ndarray) or raw.ndim != 5 or raw.dtype != np.float32:
            fail("raw_data", f"is {_shape_dtype(raw)}; expected float32 (n_frames, n_tx, n_ax, n_el, n_ch)")
        if min(raw.shape) < 1:
            fail("raw_data", f"has shape {raw.shape}; every axis needs at least one entry")
        if raw.shape[4] not in (1, 2):
            fail("raw_data", f"has {raw.shape[4]} channels (last axis); expected 1 (RF) or 2 (IQ)")
        sizes = {"n_el": self.n_el}
        geometry = np.asarray(self.probe_geometry)
        if geometry.shape != (self.n_el, 3):
            fail("probe_geometry", f"has shape {geometry.shape}; expected (n_el, 3) = ({self.n_el}, 3)")
        for name, tail in _PER_TRANSMIT.items():
            expected = (self.n_tx, *(sizes.get(n, n) for n in tail))
            if np.shape(getattr(self, name)) != expected:
                fail(name, f"has shape {np.shape(getattr(self, name))}; expected {expected} (n_tx = {self.n_tx})")
        for name in _SCALARS:
            value = getattr(self, name)
            if not _is_number(value) or not np.isfinite(value):
                fail(name, f"is {value!r}; expected a finite number")
            if value < 0 or (value == 0 and name != "demodulation_frequency"):
                fail(name, f"is {value!r}; expected a number >= 0 (0 for RF)" if name == "demodulation_frequency"
                     else f"is {value!r}; expected a number > 0")
        if self.is_iq and self.demodulation_frequency == 0:
            fail("demodulation_frequency", "is 0, but the data are IQ (2 channels); IQ data need the frequency "
                                           "they were demodulated at")
        for name in ("raw_data", "probe_geometry", *_PER_TRANSMIT):
            array = np.asarray(getattr(self, name))
            if array.dtype.kind not in "biuf":
                fail(name, f"has dtype {array.dtype}; expected real numbers")
            bad = count_nonfinite(array)
            if bad:
                fail(name, f"holds {bad} non-finite values (NaN or Inf)")
        if not isinstance(self.metadata, dict):
            fail("metadata", f"is {type(self.metadata).__name__}; expected a dict")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _shape_dtype(array: Any) -> str:
    return f"{type(array).__name__} of shape {np.shape(array)}, dtype {getattr(array, 'dtype', '?')}"


# ------------------------------------------------------------------ zea


_UNREADABLE = "cannot be read as an HDF5 file, truncated or not HDF5"

ZEA_KEYS = {"raw_data": "data/raw_data", **{name: f"scan/{name}" for name in (
    "probe_geometry", *_SCALARS, *_PER_TRANSMIT)}}
"""Field of :class:`RFData` -> key in a zea file."""


def write_zea(rf: RFData, path: str | os.PathLike, *, beamformed: np.ndarray | None = None,
              envelope: np.ndarray | None = None, image: np.ndarray | None = None,
              extras: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``rf`` (and optional derived arrays) as a zea HDF5 file, atomically.

    Args:
        beamformed, envelope, image: written as ``data/beamformed_data``, ``data/envelope_data``,
            ``data/image``, unchanged.
        extras: arrays of medprior's own (region masks, a haze estimate), written under
            ``medprior/<name>``, a group that other zea readers ignore.

    Raises:
        MedpriorError: raw or derived data hold NaN or Inf (nothing is written).
        InputError: naming ``path`` and the key, for an ``rf`` that :meth:`RFData.check` refuses.
    """
    derived = {name: np.asarray(a) for name, a in zip(DERIVED, (beamformed, envelope, image)) if a is not None}
    extras = {name: np.asarray(a) for name, a in (extras or {}).items()}
    for name, array in {"raw_data": rf.raw_data, **derived}.items():
        require_finite_output(path, array, f"data/{name}")
    for name, array in extras.items():
        require_finite_output(path, array, f"{EXTRAS}/{name}")
    rf.check(path, ZEA_KEYS)
    metadata = dict(rf.metadata)
    with atomic_path(path) as temporary:
        with h5py.File(temporary, "w") as file:
            file.attrs["description"] = str(metadata.get("description", ZEA_DESCRIPTION))
            if "probe" in metadata:
                file.attrs["probe"] = str(metadata["probe"])
            file.attrs["medprior_metadata"] = json.dumps(metadata, default=str)
            data = file.create_group("data")
            data.create_dataset("raw_data", data=rf.raw_data)
            for name, array in derived.items():
                data.create_dataset(name, data=array)
            for name, array in extras.items():
                file.create_dataset(f"{EXTRAS}/{name}", data=array)
            scan = file.create_group("scan")
            for name in ("probe_geometry", *_PER_TRANSMIT):
                scan.create_dataset(name, data=np.asarray(getattr(rf, name)))
            for name in _SCALARS:
                scan.create_dataset(name, data=float(getattr(rf, name)))
            for name in ("n_ax", "n_el", "n_tx", "n_frames"):
                scan.create_dataset(name, data=np.int64(getattr(rf, name)))
    return Path(path)


def read_zea(path: str | os.PathLike) -> RFData:
    """Read a zea HDF5 file (current or older layout) and check it.

    Raises:
        InputError: one line naming the file and the key: missing, unreadable or truncated file, a
            missing or malformed key, sizes that disagree, non-finite values.
    """
    return read_hdf5(path, _read_zea, _UNREADABLE)


def read_zea_derived(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The derived arrays of a zea file that are present: ``beamformed_data``, ``envelope_data``, ``image``."""
    def read(file: h5py.File, path: Path) -> dict[str, np.ndarray]:
        group = _group(file, "data", path)
        return {name: group[name][()] for name in DERIVED if isinstance(group.get(name), h5py.Dataset)}
    return read_hdf5(path, read, _UNREADABLE)


def read_zea_extras(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays under ``medprior/`` of a zea file written by medprior (none for other files)."""
    def read(file: h5py.File, path: Path) -> dict[str, np.ndarray]:
        group = file.get(EXTRAS)
        if not isinstance(group, h5py.Group):
            return {}
        return {name: group[name][()] for name in group if isinstance(group[name], h5py.Dataset)}
    return read_hdf5(path, read, _UNREADABLE)


def _read_zea(file: h5py.File, path: Path) -> RFData:
    raw = _dataset(file, "data/raw_data", path)
    if raw.ndim != 5 or raw.dtype.kind not in "iuf":
        raise InputError(path, f"data/raw_data: has shape {raw.shape} and dtype {raw.dtype}; expected real numbers "
                               "(n_frames, n_tx, n_ax, n_el, n_ch)")
    raw = raw.astype(np.float32, copy=False)
    _group(file, "scan", path)
    fields = {name: _dataset(file, f"scan/{name}", path) for name in ("probe_geometry", "initial_times", "t0_delays",
                                                                       "tx_apodizations", "focus_distances",
                                                                       "polar_angles")}
    for name in ("sampling_frequency", "center_frequency", "sound_speed"):
        fields[name] = _scalar(file, f"scan/{name}", path)
    if "scan/demodulation_frequency" in file:
        fields["demodulation_frequency"] = _scalar(file, "scan/demodulation_frequency", path)
    elif raw.shape[4] == 2:
        raise InputError(path, "scan/demodulation_frequency: missing; the data are IQ (2 channels) and need the "
                               "frequency they were demodulated at")
    else:
        fields["demodulation_frequency"] = 0.0
    origins = file.get("scan/transmit_origins")
    fields["transmit_origins"] = (_dataset(file, "scan/transmit_origins", path) if origins is not None
                                  else np.zeros((raw.shape[1], 3)))
    for axis, name in enumerate(("n_frames", "n_tx", "n_ax", "n_el")):
        if f"scan/{name}" in file and _scalar(file, f"scan/{name}", path) != raw.shape[axis]:
            raise InputError(path, f"scan/{name}: is {_scalar(file, f'scan/{name}', path):g}, but data/raw_data has "
                                   f"{raw.shape[axis]} along that axis (shape {raw.shape})")
    rf = RFData(raw_data=raw, metadata=_zea_metadata(file, path), **fields)
    rf.check(path, ZEA_KEYS)
    return rf


def _zea_metadata(file: h5py.File, path: Path) -> dict[str, Any]:
    """medprior's own metadata as written, else (a file of another writer) its description and probe."""
    if "medprior_metadata" in file.attrs:
        return json_attribute(file, "medprior_metadata", path)
    metadata = {}
    for key in ("description", "probe"):
        if key in file.attrs:
            value = file.attrs[key]
            metadata[key] = value.decode() if isinstance(value, bytes) else str(value)
    return metadata


# ------------------------------------------------------------------ PICMUS


def read_picmus(path: str | os.PathLike) -> RFData:
    """Read a PICMUS HDF5 file (``US/US_DATASET0000``): one frame of plane-wave transmits.

    ``data/real`` (and ``data/imag`` for IQ, ``modulation_frequency`` > 0) ``(n_tx, n_el, n_ax)``
    become ``raw_data`` ``(1, n_tx, n_ax, n_el, n_ch)``; ``probe_geometry`` (3, n_el) is transposed;
    ``t0_delays`` are :func:`~medprior.physics.probes.plane_wave_delays` of each angle; apodizations
    are ones, focus distances and transmit origins zeros. The centre frequency is ``pulse_frequency``,
    else ``modulation_frequency``.

    Raises:
        InputError: one line naming the file and the full key path.
    """
    return read_hdf5(path, _read_picmus, _UNREADABLE)


def _read_picmus(file: h5py.File, path: Path) -> RFData:
    from medprior.physics.probes import plane_wave_delays  # here: the physics package imports torch

    g = PICMUS_GROUP
    _group(file, g, path)
    modulation = _scalar(file, f"{g}/modulation_frequency", path)
    real = _dataset(file, f"{g}/data/real", path)
    channels = [real]
    if modulation > 0:
        channels.append(_dataset(file, f"{g}/data/imag", path))
    for key, array in zip(("real", "imag"), channels):
        if array.ndim != 3 or array.shape != real.shape or array.dtype.kind not in "iuf":
            raise InputError(path, f"{g}/data/{key}: has shape {array.shape} and dtype {array.dtype}; expected real "
                                   f"numbers (n_tx, n_el, n_ax) like data/real {real.shape}")
    n_tx, n_el, _ = real.shape
    raw = np.stack(channels, axis=-1).transpose(0, 2, 1, 3)[None].astype(np.float32)
    geometry = _dataset(file, f"{g}/probe_geometry", path)
    if geometry.shape != (3, n_el):
        raise InputError(path, f"{g}/probe_geometry: has shape {geometry.shape}; expected (3, n_el) = (3, {n_el})")
    angles = _dataset(file, f"{g}/angles", path).astype(np.float64).reshape(-1)
    if angles.shape != (n_tx,):
        raise InputError(path, f"{g}/angles: has {angles.size} angles; data/real has {n_tx} transmits")
    initial = _dataset(file, f"{g}/initial_time", path).astype(np.float64).reshape(-1)
    if initial.size not in (1, n_tx):
        raise InputError(path, f"{g}/initial_time: has {initial.size} values; expected 1 or n_tx = {n_tx}")
    sound_speed = _scalar(file, f"{g}/sound_speed", path)
    if f"{g}/pulse_frequency" in file:
        center = _scalar(file, f"{g}/pulse_frequency", path)
    elif modulation > 0:
        center = modulation
    else:
        raise InputError(path, f"{g}/pulse_frequency: missing, and modulation_frequency is 0 (RF data): the centre "
                               "frequency is unknown; add pulse_frequency (Hz)")
    positions = geometry.T.astype(np.float64)
    if not (np.isfinite(positions).all() and np.isfinite(angles).all() and sound_speed > 0):
        raise InputError(path, f"{g}/probe_geometry, angles, sound_speed: need finite values and sound_speed > 0")
    delays = np.stack([plane_wave_delays(positions, angle, sound_speed) for angle in angles])
    sampling = _scalar(file, f"{g}/sampling_frequency", path)
    rf = RFData(raw_data=raw, probe_geometry=positions, sampling_frequency=sampling,
                center_frequency=center, demodulation_frequency=modulation,
                initial_times=np.broadcast_to(initial, (n_tx,)).copy(), t0_delays=delays,
                tx_apodizations=np.ones((n_tx, n_el)), focus_distances=np.zeros(n_tx),
                transmit_origins=np.zeros((n_tx, 3)), polar_angles=angles, sound_speed=sound_speed,
                metadata={"description": "PICMUS plane-wave data"})
    rf.check(path, {"raw_data": f"{g}/data", "probe_geometry": f"{g}/probe_geometry", "polar_angles": f"{g}/angles",
                    "initial_times": f"{g}/initial_time", "demodulation_frequency": f"{g}/modulation_frequency",
                    "sampling_frequency": f"{g}/sampling_frequency", "sound_speed": f"{g}/sound_speed",
                    "center_frequency": f"{g}/pulse_frequency"})
    return rf


# ------------------------------------------------------------------ shared


def detect_format(path: str | os.PathLike) -> str | None:
    """``"zea"``, ``"picmus"`` or ``None`` (another HDF5 file, e.g. a medprior measurement) for an HDF5 file.

    Raises:
        InputError: the file cannot be opened as HDF5 (missing, truncated, not HDF5).
    """
    def kind(file: h5py.File, path: Path) -> str | None:
        if isinstance(file.get("data/raw_data"), h5py.Dataset) and isinstance(file.get("scan"), h5py.Group):
            return "zea"
        if isinstance(file.get(PICMUS_GROUP), h5py.Group):
            return "picmus"
        return None
    return read_hdf5(path, kind, _UNREADABLE)


def read_rf(path: str | os.PathLike) -> RFData:
    """Read a zea or PICMUS file, whichever it is."""
    kind = detect_format(path)
    if kind is None:
        raise InputError(path, f"is neither a zea file (data/raw_data and scan/) nor a PICMUS file ({PICMUS_GROUP})")
    return read_zea(path) if kind == "zea" else read_picmus(path)


def _group(file: h5py.File, key: str, path: Path) -> h5py.Group:
    item = file.get(key)
    if not isinstance(item, h5py.Group):
        raise InputError(path, f"{key}: {'missing' if item is None else 'is not a group'}")
    return item


def _dataset(file: h5py.File, key: str, path: Path) -> np.ndarray:
    item = file.get(key)
    if not isinstance(item, h5py.Dataset):
        raise InputError(path, f"{key}: {'missing' if item is None else 'is not a dataset'}")
    return np.asarray(item[()])


def _scalar(file: h5py.File, key: str, path: Path) -> float:
    value = _dataset(file, key, path)
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise InputError(path, f"{key}: has shape {value.shape} and dtype {value.dtype}; expected one number")
    return float(value.reshape(()))


def describe_rf(rf: RFData) -> str:
    """A short multi-line summary: probe, transmits, frames, RF or IQ, frequencies (MHz), samples and depth (mm)."""
    positions = np.asarray(rf.probe_geometry, dtype=np.float64)
    pitch = np.median(np.linalg.norm(np.diff(positions, axis=0), axis=1)) if rf.n_el > 1 else None
    probe = f"{rf.n_el} elements" + (f", pitch {pitch * 1e3:.3f} mm" if pitch is not None else "")
    if "probe" in rf.metadata:
        probe += f" ({rf.metadata['probe']})"
    focus = np.asarray(rf.focus_distances)
    kind = ("plane waves" if np.all(focus == 0) else "diverging waves" if np.all(focus < 0)
            else "focused transmits" if np.all(focus > 0) else "transmits")
    angles = np.rad2deg(np.asarray(rf.polar_angles, dtype=np.float64))
    signal = (f"IQ, demodulated at {rf.demodulation_frequency / 1e6:.3f} MHz" if rf.is_iq else "RF")
    return "\n".join([
        f"probe:       {probe}",
        f"transmits:   {rf.n_tx} {kind}, angles {angles.min():.1f} .. {angles.max():.1f} deg",
        f"frames:      {rf.n_frames}",
        f"signal:      {signal}",
        f"frequencies: sampling {rf.sampling_frequency / 1e6:.3f} MHz, centre {rf.center_frequency / 1e6:.3f} MHz",
        f"samples:     {rf.n_ax} per element, depth {rf.depth * 1e3:.1f} mm at {rf.sound_speed:g} m/s",
    ])
