#!/usr/bin/env bash
# Train and score PET/CT segmentation models from a HECKTOR folder split by seed, as one would on the
# real HECKTOR training data: phantom cases written in the imagesTr/labelsTr layout, `medprior
# hecktor-split` into case-disjoint train / holdout / test folders, the shipped recipes
# (configs/priors/petct_{diffusion,segresnet}.yaml) retrained from `data.files` on the train folder, and
# every model (these and the shipped phantom-seed ones) plus the threshold scored on the test folder.
#
#   benchmarks/segmentation_split.sh OUT [CASES] [FIRST_SEED] [SPLIT_SEED] [TRAIN_SECONDS]
#
# Defaults: 40 cases from seed 4000 (no shipped model saw them), split seed 0 (25 % test, 5 %
# holdout), 900 s of training per model on one CPU thread each (both side by side). With real data,
# replace the first step by your HECKTOR folder. Scores in OUT/eval/*.json, a table on stdout.
set -euo pipefail
out=${1:?usage: segmentation_split.sh OUT [CASES] [FIRST_SEED] [SPLIT_SEED] [TRAIN_SECONDS]}
cases=${2:-40}; first=${3:-4000}; split_seed=${4:-0}; seconds=${5:-900}
recipes=$(cd "$(dirname "$0")/../configs/priors" && pwd)
shipped=$(cd "$(dirname "$0")/../priors" && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
export OMP_NUM_THREADS=1

medprior phantom petct --out "$out/cases" --cases "$cases" --seed "$first" -q
medprior hecktor-split --cases "$out/cases" --out "$out/split" --seed "$split_seed" --test 0.25 --holdout 0.05

for method in diffusion segresnet; do
  python - "$recipes/petct_$method.yaml" "$recipes/petct_diffusion.yaml" "$out" "$seconds" <<'PY'
import sys
import yaml
from medprior.config import merged
recipe, base, out, seconds = sys.argv[1:]
config = yaml.safe_load(open(recipe))
if config.pop("base", None):
    config = merged(yaml.safe_load(open(base)), config)
config["name"] += "_split"
config["data"] = {"files": {"train": [f"{out}/split/train"], "holdout": [f"{out}/split/holdout"]}}
config["training"]["time_budget_s"] = int(seconds)
yaml.safe_dump(config, open(f"{out}/{config['name']}.yaml", "w"), sort_keys=False)
PY
  medprior train-prior --config "$out/petct_${method}_split.yaml" --out "$out/models/petct_$method" \
    --workdir "$out/work_$method" --device cpu -q &
done
wait

mkdir -p "$out/eval"
for method in diffusion segresnet; do
  for source in split shipped; do
    model=$([ "$source" = split ] && echo "$out/models/petct_$method" || echo "$shipped/petct_$method")
    maps=$([ "$method" = diffusion ] && echo "--uncertainty $out/sub/${method}_${source}_maps" || true)
    medprior segment --model "$model" --input "$out/split/test" --output "$out/sub/${method}_$source" $maps -q
    medprior check-submission --challenge hecktor --submission "$out/sub/${method}_$source" --cases "$out/split/test" -q
    medprior evaluate segmentation --submission "$out/sub/${method}_$source" --cases "$out/split/test" $maps \
      --out "$out/eval/${method}_$source.json" -q
  done
done
medprior segment --method threshold --input "$out/split/test" --output "$out/sub/threshold" -q
medprior evaluate segmentation --submission "$out/sub/threshold" --cases "$out/split/test" --out "$out/eval/threshold.json" -q
python - "$out/eval" <<'PY'
import json, sys
from pathlib import Path
print("| model | DSCagg GTVp | DSCagg GTVn | DSCagg mean |\n|---|---|---|---|")
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    scores = json.loads(path.read_text())["aggregate"]
    print(f"| {path.stem} | {scores['DSCagg_GTVp']:.3f} | {scores['DSCagg_GTVn']:.3f} | {scores['DSCagg_mean']:.3f} |")
PY
