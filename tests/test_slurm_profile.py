"""The SLURM profile with the real executor plugin against a fake SLURM: what each rule asks sbatch for.

Fake `sbatch`, `srun`, `sacct`, `squeue`, `scancel`, `sinfo` and `scontrol` go first on PATH. `sbatch` records
its arguments, runs the job command (`--wrap`) locally and prints a job id; `srun` (used by the job step inside
the job) records and runs its command; `sacct` / `squeue` report each recorded job COMPLETED or FAILED by its
exit code. The jobs really run, so the outputs are the workflow's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflows/profiles/slurm"

FAKE = r'''#!{python}
import json, os, pathlib, re, subprocess, sys
state = pathlib.Path(os.environ["FAKE_SLURM_STATE"])
name, args = pathlib.Path(sys.argv[0]).name, sys.argv[1:]
with open(state / "calls.jsonl", "a") as f:
    f.write(json.dumps([name, *args]) + "\n")
jobs = state / "jobs"
jobs.mkdir(exist_ok=True)
if name == "sbatch":
    jobid = 1000
    while True:  # sbatch calls come concurrently: claim the next free id atomically
        try:
            os.close(os.open(jobs / str(jobid), os.O_CREAT | os.O_EXCL))  # RUNNING until the exit code is written
            break
        except FileExistsError:
            jobid += 1
    jobid = str(jobid)
    opts = {}
    for i, a in enumerate(args):
        if a.startswith("--") and "=" in a:
            key, value = a.split("=", 1)
            opts[key] = value
        elif a.startswith("-") and i + 1 < len(args):
            opts[a] = args[i + 1]
    out = opts.get("--output", str(state / "slurm-%j.log")).replace("%j", jobid)
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SLURM_JOB_ID": jobid}
    with open(out, "w") as log:
        rc = subprocess.run(opts["--wrap"], shell=True, cwd=opts.get("-D"), env=env,
                            stdout=log, stderr=subprocess.STDOUT).returncode
    (jobs / jobid).write_text(str(rc))
    print(jobid)
elif name in ("sacct", "squeue"):
    for job in sorted(jobs.iterdir()):
        rc = job.read_text()
        print(f"{job.name}|{'RUNNING' if rc == '' else 'COMPLETED' if rc == '0' else 'FAILED'}")
elif name == "srun":
    command = list(args)
    while command and command[0].startswith("-"):
        command.pop(0)
    os.execvp(command[0], command)
elif name == "scontrol":
    print("MinJobAge = 300 sec\nMaxArraySize = 1001")
'''

CONFIG = {  # one small brain case, simulated as MRI; one tiny CT prior trained (on the CPU here)
    "data": {"brain": {"cases": 1, "seed": 12, "size": [48, 48, 31]}},
    "recon": {"mri": {"cases": 1, "slices": 2, "size": [32, 32], "coils": 4,
                      "settings": [{"name": "x4", "acceleration": 4, "center_fraction": 0.25}]}},
}
TINY_PRIOR = {
    "name": "tiny_ct", "kind": "slice2d", "image_size": [32, 32],
    "data": {"phantom": {"generator": "ct_body", "seeds": [1], "holdout_seeds": [2], "size": [32, 32, 8]}},
    "network": {"channels": [8, 16], "attention_levels": [False, False], "num_head_channels": 8, "norm_num_groups": 8},
    "schedule": {"steps": 50}, "training": {"steps": 1, "batch_size": 4},
    "check": {"samples": 2, "steps": 2},
}
TARGETS = ["results/recon/mri/BraTS-GLI-00012-000/x4/measurement.h5", "results/priors/tiny_ct"]
# rule: (cpus per task = the rule's threads, --mem (MB), -t (minutes), partition, GPUs); the profile's
# set-resources win over the rule's resources (brain_phantom mem; train_prior mem, runtime and partition).
EXPECTED = {
    "brain_phantom": (1, 8000, 10, "cpu", None),
    "simulate": (1, 8000, 20, "cpu", None),
    "train_prior": (2, 32000, 240, "gpu", 1),
}


def _rule_blocks():
    for smk in sorted((ROOT / "workflows/rules").glob("*.smk")):
        for block in re.split(r"^(?=rule )", smk.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            body = block.split("\n\n\n")[0]
            yield name, body


def test_profile_leaves_cpus_to_threads_and_sends_gpu_rules_to_the_gpu_partition():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert "cpus_per_task" not in profile["default-resources"]
    assert all("cpus_per_task" not in r for r in profile.get("set-resources", {}).values())
    gpu_rules = {name for name, body in _rule_blocks() if re.search(r"^\s+gpu=1,", body, flags=re.M)}
    assert gpu_rules == {"train_prior", "check_prior", "reconstruct_diffusion", "synthesize", "dehaze", "segment"}
    for name in gpu_rules:
        assert profile["set-resources"][name]["slurm_partition"] == "gpu", name


def test_every_rule_has_benchmark_threads_and_resources():
    for name, body in _rule_blocks():
        if name.endswith("_all"):  # aggregation only, no job
            continue
        for keyword in ("benchmark:", "threads:", "resources:", "runtime=", "mem_mb="):
            assert keyword in body, f"rule {name} lacks {keyword}"


def test_slurm_profile_submits_threads_mem_time_partition_and_gpus(tmp_path):
    bin_dir, state, work = tmp_path / "bin", tmp_path / "state", tmp_path / "work"
    for folder in (bin_dir, state, work / "priors"):
        folder.mkdir(parents=True)
    fake = bin_dir / "fake_slurm"
    fake.write_text(FAKE.replace("{python}", sys.executable))
    fake.chmod(0o755)
    for tool in ("sbatch", "srun", "sacct", "squeue", "scancel", "sinfo", "scontrol"):
        (bin_dir / tool).symlink_to(fake)
    (work / "priors/tiny_ct.yaml").write_text(yaml.safe_dump(TINY_PRIOR))
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "priors": {"train": ["tiny_ct"], "config_dir": str(work / "priors")}}))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "FAKE_SLURM_STATE": str(state)}
    for var in [v for v in env if v.startswith("SLURM_")]:
        del env[var]
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
         "--profile", str(PROFILE), "--configfile", str(config), "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "1", "--latency-wait", "5", "--retries", "0", *TARGETS],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (work / TARGETS[0]).stat().st_size > 0
    assert (work / "results/priors/tiny_ct/prior.json").exists()

    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    submitted = {}
    for call in calls:
        if call[0] != "sbatch":
            continue
        args = call[1:]
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", args[args.index("--comment") + 1]).group(1)
        options = {}
        for i, arg in enumerate(args):
            if arg.startswith("--") and "=" in arg:
                options[arg.split("=", 1)[0]] = arg.split("=", 1)[1]
            elif arg in ("--mem", "-t", "-p"):
                options[arg] = args[i + 1]
        submitted[rule] = options
    assert set(submitted) == set(EXPECTED), sorted(submitted)
    for rule, (cpus, mem, minutes, partition, gpus) in EXPECTED.items():
        options = submitted[rule]
        asked = (int(options["--cpus-per-task"]), int(options["--mem"]), int(options["-t"]), options["-p"],
                 int(options["--gpus"]) if "--gpus" in options else None)
        assert asked == (cpus, mem, minutes, partition, gpus), (rule, options)
    # inside the job, the job step's srun asks for the same CPUs
    sruns = [call for call in calls if call[0] == "srun"]
    assert len(sruns) == len(EXPECTED)
    assert sorted(int(a.split("=")[1]) for c in sruns for a in c if a.startswith("--cpus-per-task=")) == \
        sorted(e[0] for e in EXPECTED.values())
