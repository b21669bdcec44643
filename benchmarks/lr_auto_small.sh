#!/bin/bash
# --lr auto against the default lr 3e-3 on a small set: a seeded 3,000-image subset of
# Fashion-MNIST (--limit 3000), MobileNetV2 alpha 0.35 at 32x32, 15 epochs (the default),
# two seeds; test accuracy on the 10,000 official test images. Results:
# benchmarks/results/lr_auto_small.md
#   bash benchmarks/lr_auto_small.sh OUT_DIR [SEEDS]
cd "$(dirname "$0")/.."
E=".venv/bin/edgekit"
D=/usr/share/datasets/fashion-mnist
O=${1:?usage: lr_auto_small.sh OUT_DIR [SEEDS]}
SEEDS=${2:-"0 1"}
LRS=${LRS:-"3e-3 auto"}  # e.g. LRS="0.00231" to train at a candidate the sweep recorded
mkdir -p "$O"
for seed in $SEEDS; do
  for lr in $LRS; do
    run=$O/lr_${lr}_seed$seed
    .venv/bin/python -c "import sys; from edgekit.run_record import is_run; sys.exit(not is_run(sys.argv[1]))" $run || { rm -rf $run; /usr/bin/time -f "%e s" nice -n 5 $E train mobilenet_v2 --alpha 0.35 \
      --input-size 32 --data $D --limit 3000 --seed $seed --lr $lr --out $run --json > $run.train.json 2> $run.train.err; }
    nice -n 5 $E evaluate $run --data $D --json > $run.eval.json 2> $run.eval.err
    .venv/bin/python - "$run" <<'PY'
import json, sys
from edgekit.run_record import read_record
run = sys.argv[1]
record, ev = read_record(run), json.load(open(run + ".eval.json"))
meta = {"config": record.config, **record.extra}
lf = meta.get("lr_find")
print(f"| {run.rsplit('/', 1)[1]} | {meta['config']['lr']:.3g} | "
      f"{'' if lf is None else lf['candidates']} | {meta['final'].get('accuracy', 0):.4f} | "
      f"{meta['final'].get('val_accuracy', 0):.4f} | {ev['accuracy']:.4f} | {meta['wall_seconds_this_invocation']} |")
PY
  done
done
