#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run: the CUDA tests, the whole test suite with
# device "auto" resolving to the GPU, the GPU benchmarks (wavelets, demo prior networks,
# 256^3 DDS memory, full-size synthesis, ultrasound simulator / DAS speed and dehazing) and a short
# bf16 training run of the CT slice prior followed by its sample check.
#
# Usage: bash benchmarks/gpu_checks.sh OUTDIR   (from the repository root, medprior importable)
# Writes into OUTDIR: log.txt (everything printed), wavelets_cuda.json, diffusion_cuda.json,
# recon_memory_cuda.json, synthesis_cuda.json (and its .md table), ultrasound_speed_cuda.json,
# dehazing_quality_cuda.json (and its .md table), ct_slices_gpu.check.json, ct_slices_gpu.png.
# Each step has its own time limit, so one stuck step cannot eat the others' time.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR}
mkdir -p "$out"
work=$(mktemp -d)
exec > >(tee -a "$out/log.txt") 2>&1

step() {  # step SECONDS NAME COMMAND...: run with a limit, log the time and exit status
    local limit=$1 name=$2 start=$SECONDS
    shift 2
    echo "=== $name (limit ${limit}s)"
    timeout "$limit" "$@"
    echo "=== $name: exit $? after $((SECONDS - start))s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

step 90 "CUDA tests" python3 -m pytest -q -p no:cacheprovider -k cuda tests
step 60 "diffusion benchmark" python3 benchmarks/diffusion.py --device cuda --out "$out/diffusion_cuda.json"
step 60 "wavelet benchmark" python3 benchmarks/wavelets.py --device cuda --repeats 5 --out "$out/wavelets_cuda.json"
step 90 "train ct_slices on the GPU (bf16 autocast, 60 s)" \
    python3 -m medprior.cli train-prior --config configs/priors/ct_slices.yaml --out "$work/ct_slices_gpu" \
    --time-budget 60 --device cuda
step 45 "check the GPU-trained prior" \
    python3 -m medprior.cli check-prior --prior "$work/ct_slices_gpu" --config configs/priors/ct_slices.yaml \
    --out "$out/ct_slices_gpu.check.json" --figure "$out/ct_slices_gpu.png" --device cuda
step 90 "DDS on a 256^3 CT volume" python3 benchmarks/recon_memory.py --device cuda --out "$out/recon_memory_cuda.json"
step 120 "synthesis: 2 held-out cases and a full-size case at 50 steps" \
    python3 benchmarks/synthesis_quality.py --model cwdm=priors/brain_cwdm --cases 2 --full-size 50 --device cuda \
    --out "$out/synthesis_cuda.json"
step 120 "ultrasound simulator and DAS on the GPU against pymust on the CPU" \
    python3 benchmarks/ultrasound_speed.py --device cuda --out "$out/ultrasound_speed_cuda.json"
step 150 "dehazing quality, 2 frames per split, on the GPU" \
    python3 benchmarks/dehazing_quality.py --frames 2 --device cuda --out "$out/dehazing_quality_cuda.json"
step 150 "test suite, device auto = cuda" \
    env OMP_NUM_THREADS=2 python3 -m pytest -q -p no:cacheprovider -x -n 8 --ignore tests/test_workflow.py tests
rm -rf "$work"
