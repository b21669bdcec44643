#!/bin/bash
# QAT vs plain PTQ on a trained run: edgekit qat (1 epoch), int8 TFLite + ONNX of both,
# accuracy and top-1 agreement with the original Keras run on the 10,000 test images, size and
# 1-thread latency. Results: benchmarks/results/qat_vs_ptq_*.md
set -x
cd "$(dirname "$0")/.."
E=".venv/bin/edgekit"
D=/usr/share/datasets/fashion-mnist
RUN=${1:?usage: qat_vs_ptq.sh TRAINED_RUN OUT_DIR}
O=${2:?usage: qat_vs_ptq.sh TRAINED_RUN OUT_DIR}
mkdir -p "$O"
date
/usr/bin/time -v nice -n 5 $E qat $RUN --epochs 1 --out $O/qat --json > $O/qat.json 2> $O/qat.err
date
nice -n 5 $E export $O/qat --format tflite,onnx --quantize int8 --num-validation 10000 --out $O/qat_files --json > $O/qat_export.json 2> $O/qat_export.err
date
nice -n 5 $E export $RUN --format tflite,onnx --quantize int8 --max-accuracy-drop none --num-validation 10000 --out $O/ptq --json > $O/ptq_export.json 2> $O/ptq_export.err
date
for f in $O/qat_files/qat_int8.tflite $O/qat_files/qat_int8.onnx $O/ptq/$(basename $RUN)_int8.tflite $O/ptq/$(basename $RUN)_int8.onnx; do
  b=$(basename $f)
  nice -n 5 $E evaluate $f --data $D --reference $RUN --limit 10000 --json > $O/eval_$b.json 2> $O/eval_$b.err
  nice -n 5 $E profile $f --threads 1 --json > $O/profile_$b.json 2> $O/profile_$b.err
done
nice -n 5 $E evaluate $RUN --data $D --limit 10000 --json > $O/eval_keras.json 2> $O/eval_keras.err
date
echo FIGURES DONE
