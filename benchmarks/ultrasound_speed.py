"""Speed of our ultrasound simulation and beamforming (medprior.physics) against pymust (the MUST toolbox).

One scene for both: the L11-4v (our preset, given to pymust as its ``param``), ``--transmits`` plane
waves from -6 to +6 degrees, ``--scatterers`` random point scatterers (uniform in x in [-19, 19] mm,
z in [2, 40] mm, standard-normal reflectivity, no attenuation), fs = 4 f0, and a 38 x 38 mm image grid
(2 to 40 mm deep) at half a wavelength. Timed, each on the same input:

- simulation: ``pymust.simus`` (one call per transmit, 2D) against our ``simulate_rf`` (all transmits,
  ``route="auto"``, which takes the direct route for this few scatterers; ``ours_fine_route_s``: the
  fine-grid route, the one for ~100k scatterers, whose cost does not depend on their number);
- beamforming of IQ (``pymust.rf2iq`` of our RF, the same for both), compounded over the transmits,
  f-number 1.5, boxcar receive aperture: ``pymust.dasmtx`` per transmit then the sparse product
  (``das_build_and_apply_s``), the product alone with the matrices already built (``das_apply_s``, what
  a loop over many frames of one sequence pays), against our ``delay_and_sum`` (which builds nothing and
  pays the same every call), with torch's threads and on one thread (``ours_one_thread_s``: pymust's
  numpy and scipy.sparse work on one; on a loaded machine each of torch's multithreaded operations can
  wait milliseconds for a descheduled thread, and the one-thread time is the steadier comparison).

The two simulators do not model the same physics (simus adds transmit diffraction and works in the
frequency domain), so only their times are compared here; tests/physics/test_pymust_agreement.py
compares their images. pymust runs once per measurement (it is slow), on the CPU, numpy's threads;
ours is the median of ``--repeats`` on ``--device``, in the same process, right after.

How simus parallelises (pymust 0.1.9): its ``options.ParPool`` is False by default, and then ``pfield``
runs in this process, a Python loop over frequencies of numpy element-wise work (one thread) and small
matrix products (OpenBLAS, numpy's BLAS threads, up to the core count). ``ParPool=True`` would split
the scatterers over a ``multiprocessing`` thread (default) or process pool of ``cpu_count()``
workers; it is not used here (nor by the agreement tests). On a loaded machine OpenBLAS's spinning
threads are what slows simus down most (30-57 s measured under heavy load, 3 s idle), which is why
both simulators must be timed in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import pymust
import torch

from measure import machine_info, median_time, timing_device, write_report
from medprior.physics.beamform import delay_and_sum
from medprior.physics.image_grids import cartesian_grid
from medprior.physics.echoes import simulate_rf
from medprior.physics.probes import PROBES, SOUND_SPEED, plane_wave_delays

PROBE = PROBES["L11-4v"]
FS = 4 * PROBE.center_frequency
F_NUMBER = 1.5


def pymust_param() -> pymust.utils.Param:
    """pymust's description of our L11-4v (bandwidth in %, linear, no attenuation)."""
    param = pymust.utils.Param()
    param.fc, param.fs, param.c = PROBE.center_frequency, FS, SOUND_SPEED
    param.pitch, param.width, param.kerf = PROBE.pitch, PROBE.element_width, PROBE.pitch - PROBE.element_width
    param.Nelements, param.bandwidth, param.radius = PROBE.n_elements, 100 * PROBE.bandwidth, np.inf
    param.fnumber, param.attenuation = F_NUMBER, 0.0
    return param


def once(fn) -> tuple[float, object]:
    """Wall time (s) and result of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/ultrasound_speed.json"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--scatterers", type=int, default=1000)
    parser.add_argument("--transmits", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device, sync = timing_device(parser, args.device)

    positions = PROBE.element_positions()
    delays = np.stack([plane_wave_delays(positions, a) for a in np.deg2rad(np.linspace(-6, 6, args.transmits))])
    rng = np.random.default_rng(0)
    n = args.scatterers
    scatterers = np.stack([rng.uniform(-19e-3, 19e-3, n), np.zeros(n), rng.uniform(2e-3, 40e-3, n)], 1)
    amplitudes = rng.standard_normal(n)
    grid = cartesian_grid((-19e-3, 19e-3), (2e-3, 40e-3), PROBE.wavelength() / 2)
    n_ax = int(np.ceil(2 * np.hypot(40e-3, 40e-3) / SOUND_SPEED * FS))
    transmit = dict(t0_delays=delays, tx_apodizations=np.ones_like(delays), initial_times=np.zeros(len(delays)),
                    sampling_frequency=FS)

    param = pymust_param()
    simus_s, _ = once(lambda: [pymust.simus(scatterers[:, 0], scatterers[:, 2], amplitudes, d[None], param)
                               for d in delays])
    ours_sim = lambda: simulate_rf(positions, scatterers, amplitudes, **transmit,  # noqa: E731
                                   center_frequency=PROBE.center_frequency, n_ax=n_ax, bandwidth=PROBE.bandwidth,
                                   element_width=PROBE.element_width, attenuation=0.0, device=device)
    sim_s = median_time(ours_sim, args.repeats, sync)
    fine_s = median_time(lambda: simulate_rf(positions, scatterers, amplitudes, **transmit,
                                             center_frequency=PROBE.center_frequency, n_ax=n_ax,
                                             bandwidth=PROBE.bandwidth, element_width=PROBE.element_width,
                                             attenuation=0.0, device=device, route="fine"), args.repeats, sync)

    rf = ours_sim().cpu().numpy().astype(np.float64)
    iq = np.stack([pymust.rf2iq(channels, FS, PROBE.center_frequency) for channels in rf])
    x, z = grid[..., 0], grid[..., 2]

    def pymust_build():
        return [pymust.dasmtx(1j * np.array(iq.shape[1:]), x, z, d, param) for d in delays]

    def pymust_apply(matrices):
        return sum((m @ c.flatten(order="F")).reshape(x.shape, order="F") for m, c in zip(matrices, iq))

    build_s, matrices = once(pymust_build)
    apply_s = median_time(lambda: pymust_apply(matrices), args.repeats, lambda: None)
    iq_t = torch.from_numpy(iq).to(device)
    ours_das = lambda: delay_and_sum(iq_t, positions, grid, **transmit, f_number=F_NUMBER,  # noqa: E731
                                     window="boxcar", demodulation_frequency=PROBE.center_frequency)
    das_s = median_time(ours_das, args.repeats, sync)
    threads = torch.get_num_threads()  # and on one thread, as pymust's numpy and scipy.sparse run
    torch.set_num_threads(1)
    das_one_thread_s = median_time(ours_das, args.repeats, sync)
    torch.set_num_threads(threads)
    theirs, ours = np.abs(pymust_apply(matrices)).ravel(), ours_das().abs().cpu().numpy().ravel()

    report = {"benchmark": "ultrasound simulation and DAS: medprior.physics vs pymust (simus, rf2iq + dasmtx)",
              "date": datetime.datetime.now().isoformat(timespec="seconds"), **machine_info(device),
              "pymust": getattr(pymust, "__version__", "0.1.9"), "probe": PROBE.name, "transmits": len(delays),
              "scatterers": n, "samples": n_ax, "elements": PROBE.n_elements, "grid": list(grid.shape[:2]),
              "grid_spacing_m": PROBE.wavelength() / 2, "f_number": F_NUMBER, "repeats": args.repeats,
              "simulation": {"pymust_simus_s": simus_s, "ours_s": sim_s, "speedup": simus_s / sim_s,
                             "ours_fine_route_s": fine_s, "speedup_fine_route": simus_s / fine_s},
              "beamforming_iq": {"pymust_das_build_and_apply_s": build_s + apply_s, "pymust_das_apply_s": apply_s,
                                 "ours_s": das_s, "speedup_vs_build_and_apply": (build_s + apply_s) / das_s,
                                 "speedup_vs_apply_only": apply_s / das_s, "ours_one_thread_s": das_one_thread_s,
                                 "speedup_vs_build_and_apply_one_thread": (build_s + apply_s) / das_one_thread_s,
                                 "envelope_correlation": float(np.corrcoef(ours, theirs)[0, 1])}}
    print(report)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
