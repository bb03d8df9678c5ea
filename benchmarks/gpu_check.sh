#!/usr/bin/env bash
# Every check that needs a GPU, in one command (sized for one H200 and a few minutes):
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine (see below for the wheels)
#   bash benchmarks/gpu_check.sh --dry-run  # the same steps on this machine's CPU, tiny sizes
#   bash benchmarks/gpu_check.sh 0 2        # only steps 0 and 2 (to split the work over calls)
#
# On the lent GPU machine (which lacks Hydra, OmegaConf, decord, PyAV, python-dotenv, pytest):
# run `../shared/tools/device-wheels.sh pytest pluggy iniconfig` here first, carry `.whl`, and
# the script installs them into /tmp/site and imports the project from src/. Results (BENCHMARKS.md, logs, summary.txt) go to
# $OUT when it is set, else to logs/gpu_check/.
#
# Steps:
#   0. benchmarks/model_throughput.py: the ViT-B step (bf16) at batch 32 and 128 for ours, HF's SDPA
#      model, explicit attention and dual masking (MFU from counted FLOPs), and ours compiled.
#   1. benchmarks/fsdp_vs_ddp.py on one GPU: ViT-L pretraining under DDP and FSDP on in-memory
#      clips (clips/s, MFU, peak memory); writes its section of BENCHMARKS.md.
#   2. A one-GPU FSDP run (sharded checkpoints) signalled with SIGUSR2 mid-run (SLURM's warning):
#      it must save last.ckpt (a directory of shards) at the current step and exit 140; the same
#      command again resumes from it and finishes; videomae.models.load reads the sharded file.
#   3. train.py end to end, ViT-B pretraining (16x224, tube 0.9, bf16, batch 32 clips): on
#      Kinetics-like files (340x256 H.264, key frame every 250) through a videomae-transcode copy
#      with num_sample 4 and 15 workers, the same loader alone (benchmarks/loader_workers.py,
#      decoding on the CPU and with data.backend=nvdec; and the NVDEC tests),
#      and train.py on in-memory clips (data=random: the loop without the data path); clips/s
#      and data-wait fraction after the first third of 300 steps.
#   4. benchmarks/pipeline.py --gpu: decode only, the loader per path (as they are, transcoded,
#      num_sample 4, NVDEC), the model step and train.py end to end, in one table
#      (BENCHMARKS.md). Steps 0-4 take more than one call's 10 minutes: run "0 1", "2 3", "4".
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
STEPS=()
for arg in "$@"; do
  if [[ "$arg" == "--dry-run" ]]; then DRY=1; else STEPS+=("$arg"); fi
done
(( ${#STEPS[@]} )) || STEPS=(0 1 2 3 4)
want() { [[ " ${STEPS[*]} " == *" $1 "* ]]; }
OUTDIR="${OUT:-logs/gpu_check}"
mkdir -p "$OUTDIR"
SUMMARY="$OUTDIR/summary.txt"
: > "$SUMMARY"
PY=python3
[[ -x .venv/bin/python ]] && PY=.venv/bin/python

if (( ! DRY )) && ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  PY=python3
fi
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled

note() { echo "$*" | tee -a "$SUMMARY"; }
note "gpu_check $(date -u +%FT%TZ) dry_run=$DRY commit=$(git rev-parse --short HEAD 2>/dev/null)"
$PY - <<'EOF' | tee -a "$SUMMARY"
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF

# ---------------------------------------------------------------- 0. the training step alone
if want 0; then
if (( DRY )); then
  BASE=(--device cpu --sizes tiny --no-write)
  SWEEP=(--batch 1 --steps 1 --warmup 1); COMPILED=(--batch 1 --steps 1 --warmup 2)
else
  BASE=(--device cuda --sizes vit_b --precision bf16)
  SWEEP=(--batch 32 128 --steps 10 --warmup 3); COMPILED=(--batch 128 --steps 10 --warmup 5)
fi
timeout 300 $PY benchmarks/model_throughput.py "${BASE[@]}" "${SWEEP[@]}" \
  --variants ours hf_sdpa explicit ours_dual > "$OUTDIR/model.log" 2>&1
note "0. model step (ours / HF / explicit / dual masking): exit $?"
grep '^| ' "$OUTDIR/model.log" | tee -a "$SUMMARY"
timeout 300 $PY benchmarks/model_throughput.py "${BASE[@]}" "${COMPILED[@]}" --variants ours \
  --compile --section "Model throughput (compiled)" > "$OUTDIR/model_compiled.log" 2>&1
note "   torch.compile, ours: exit $?; $(grep '^| vit_b\|^| tiny' "$OUTDIR/model_compiled.log" | tr -s ' ')"
fi

# ---------------------------------------------------------------- 1. DDP vs FSDP (ViT-L)
if want 1; then
if (( DRY )); then
  timeout 600 $PY benchmarks/fsdp_vs_ddp.py --dry-run --steps 20 --batch 2 > "$OUTDIR/fsdp_vs_ddp.log" 2>&1
else
  timeout 420 $PY benchmarks/fsdp_vs_ddp.py --devices 1 --batch 16 --steps 30 > "$OUTDIR/fsdp_vs_ddp.log" 2>&1
fi
note "1. fsdp_vs_ddp: exit $? ($(grep -c '^| ' "$OUTDIR/fsdp_vs_ddp.log") table rows)"
grep '^| ' "$OUTDIR/fsdp_vs_ddp.log" | tee -a "$SUMMARY"
fi

# ---------------------------------------------------------------- 2. preempted FSDP run resumes
if want 2; then
RUN=$(mktemp -d)/run
if (( DRY )); then
  SIZE=(backbone=tiny trainer=cpu data.num_frames=8 data.img_size=64 data.batch_size=2)
else
  SIZE=(backbone=vit_b trainer=fsdp trainer.devices=1 data.batch_size=16)
fi
ARGS=(experiment=k400_pretrain data=random "${SIZE[@]}" +trainer.max_steps=300
      data.train_batches=300 callbacks.step_checkpoint.every_n_train_steps=10
      +trainer.limit_val_batches=0 validate=false model.optim.warmup_epochs=0
      callbacks.reconstruction=null callbacks.rich_progress_bar=null logger=csv
      trainer.log_every_n_steps=1 extras.print_config=false "hydra.run.dir=$RUN")
$PY train.py "${ARGS[@]}" > "$OUTDIR/preempt_first.log" 2>&1 &
PID=$!
for _ in $(seq 600); do  # wait for the step-10 checkpoint, then signal mid-run
  [[ -e "$RUN/checkpoints/last.ckpt" ]] && break
  kill -0 $PID 2>/dev/null || break
  sleep 0.5
done
sleep 1
kill -USR2 $PID
wait $PID
FIRST=$?
STEP=$($PY - "$RUN/checkpoints/last.ckpt" <<'EOF'
import sys
from pathlib import Path
from videomae.checkpoints import is_sharded_checkpoint
from videomae.checkpoints.build import _torch_load
path = Path(sys.argv[1])
meta = _torch_load(path / "meta.pt" if is_sharded_checkpoint(path) else path)
print(meta["global_step"], "sharded" if is_sharded_checkpoint(path) else "file")
EOF
)
note "2. preempted run: exit $FIRST (expected 140), last.ckpt at step/form: $STEP"
$PY train.py "${ARGS[@]}" > "$OUTDIR/preempt_resume.log" 2>&1
note "   relaunch: exit $? (expected 0); $(grep -o 'resuming from [^ ]*' "$RUN/train.log" | tail -1)"
END=$($PY - "$RUN/checkpoints/last.ckpt" <<'EOF'
import sys
from pathlib import Path
from videomae.checkpoints import is_sharded_checkpoint
from videomae.checkpoints.build import _torch_load
from videomae.models import load
path = Path(sys.argv[1])
meta = _torch_load(path / "meta.pt" if is_sharded_checkpoint(path) else path)
model = load(path)
print(meta["global_step"], type(model).__name__, sum(p.numel() for p in model.parameters()))
EOF
)
note "   final last.ckpt: step, model, parameters: $END (expected step 300)"
cp "$RUN/train.log" "$OUTDIR/preempt_train.log" 2>/dev/null
fi

# ---------------------------------------------------------------- 3. train.py end to end
if want 3; then
WORK=$(mktemp -d)
if (( DRY )); then
  NFILES=2; STEPS=30; MODEL=(backbone=tiny trainer=cpu data.num_frames=8 data.img_size=64)
  LOAD=(data.batch_size=2 data.num_workers=1); RANDOM_BATCH=8
else
  NFILES=4; STEPS=300; MODEL=(backbone=vit_b trainer=gpu)
  LOAD=(data.batch_size=8 data.num_workers=15); RANDOM_BATCH=32
fi
$PY - "$WORK" "$NFILES" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from data_throughput import DEFAULT_CACHE, KINETICS_LIKE, generate
paths = generate(DEFAULT_CACHE, KINETICS_LIKE, int(sys.argv[2]))  # shared with loader_workers.py
# each file 16 times: epochs of many batches, each entry a fresh random window
lines = [f"{p.name} 0\n" for p in paths] * 16
(Path(sys.argv[1]) / "list.csv").write_text("".join(lines))
print(DEFAULT_CACHE)
EOF
CACHE=$($PY -c "import sys; sys.path.insert(0, 'benchmarks'); from data_throughput import DEFAULT_CACHE; print(DEFAULT_CACHE)")
$PY -m videomae.cli.transcode "$WORK/list.csv" --root "$CACHE" --out "$WORK/fast" \
  --jobs "$(nproc)" > "$OUTDIR/e2e_transcode.log" 2>&1
COMMON=(experiment=k400_pretrain "${MODEL[@]}" "+trainer.max_steps=$STEPS" validate=false
        +trainer.limit_val_batches=0 model.optim.warmup_epochs=0 callbacks.reconstruction=null
        callbacks.rich_progress_bar=null logger=csv trainer.log_every_n_steps=10
        extras.print_config=false)
summarize() {  # mean clips/s and data-wait fraction of the logged windows after the first third
  $PY - "$1" <<'EOF'
import csv, glob, sys
rows = [r for f in glob.glob(sys.argv[1] + "/csv/version_*/metrics.csv") for r in csv.DictReader(open(f))]
rows = [r for r in rows if r.get("perf/clips_per_sec")]
rows = rows[len(rows) // 3:] or rows
mean = lambda k: sum(float(r[k]) for r in rows) / max(1, len(rows))
print(f"clips/s {mean('perf/clips_per_sec'):.1f}, data wait {mean('perf/data_wait_frac'):.1%}, "
      f"windows {len(rows)}")
EOF
}
$PY train.py "${COMMON[@]}" data=custom "data.root=$WORK/fast" data.train_list=list.csv \
  data.val_list=list.csv data.num_classes=1 data.num_sample=4 "${LOAD[@]}" \
  "hydra.run.dir=$WORK/e2e" > "$OUTDIR/e2e_files.log" 2>&1
note "3. train.py on the transcoded Kinetics-like copy, num_sample 4: exit $?; $(summarize "$WORK/e2e")"
if (( DRY )); then LW=(--workers 1 --batches 4); else LW=(--workers 15 --batches 40); fi
$PY benchmarks/loader_workers.py "${LW[@]}" --num-sample 4 --fast --backends auto nvdec \
  > "$OUTDIR/loader.log" 2>&1
note "   the loader alone (CPU decoding, then NVDEC):"
grep '^| \(transcoded\|original\)' "$OUTDIR/loader.log" | tr -s ' ' | sed 's/^/   /' \
  | tee -a "$SUMMARY"
if $PY -c "import pytest" 2>/dev/null; then
  $PY -m pytest -q -p no:cacheprovider tests/test_decoding.py -k nvdec \
    > "$OUTDIR/nvdec_tests.log" 2>&1
  note "   NVDEC tests: $(tail -1 "$OUTDIR/nvdec_tests.log")"
else
  note "   NVDEC tests not run: no pytest (add 'pytest pluggy iniconfig' to device-wheels.sh)"
fi
$PY train.py "${COMMON[@]}" data=random "data.batch_size=$RANDOM_BATCH" \
  "data.train_batches=$STEPS" "hydra.run.dir=$WORK/e2e_random" > "$OUTDIR/e2e_random.log" 2>&1
note "   train.py on in-memory clips (data=random): exit $?; $(summarize "$WORK/e2e_random")"
fi

if want 4; then
  if (( DRY )); then
    PIPE=(--steps 20 --batches 2 --decode-clips 4 --files 2 --img-size 64)
  else
    PIPE=(--gpu --write)
  fi
  $PY benchmarks/pipeline.py "${PIPE[@]}" > "$OUTDIR/pipeline.log" 2>&1
  note "4. benchmarks/pipeline.py: exit $?"
  grep '^| [0-9]\.' "$OUTDIR/pipeline.log" | sed 's/^/   /' | tee -a "$SUMMARY"
fi

cp BENCHMARKS.md "$OUTDIR/" 2>/dev/null
echo "results in $OUTDIR"
