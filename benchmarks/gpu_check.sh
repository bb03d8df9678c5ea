#!/usr/bin/env bash
# Every check that needs a GPU, in one command (sized for one H200 and a few minutes):
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine (see below for the wheels)
#   bash benchmarks/gpu_check.sh --dry-run  # the same steps on this machine's CPU, tiny sizes
#   bash benchmarks/gpu_check.sh 0 2        # only steps 0 and 2 (to split the work over calls)
#
# On the lent GPU machine (which lacks Hydra, OmegaConf, decord, PyAV, python-dotenv): run
# `../shared/tools/device-wheels.sh` here first (48 MiB), carry `.whl`, and the script installs
# them into /tmp/site and imports the project from src/. Rehearsed on the CPU (2026-11-30) in a
# venv like that machine's (Python 3.12, torch 2.11, lightning 2.6.6, transformers 5.17, no
# wandb) with the wheels installed that way: every step's --dry-run passed. Results
# (BENCHMARKS.md, logs, summary.txt) go to $OUT when it is set, else to logs/gpu_check/.
#
# Steps:
#   0. benchmarks/model_throughput.py: the ViT-B step (bf16) at batch 32 and 128 for ours, HF's SDPA
#      model, explicit attention and dual masking (MFU from counted FLOPs), and ours compiled;
#      a torch.profiler table per run in profiles/ (operators by device time; our encoder,
#      decoder and loss forward times), for what to speed up next.
#   1. benchmarks/fsdp_vs_ddp.py on one GPU: ViT-L pretraining under DDP and FSDP on in-memory
#      clips (clips/s, MFU, peak memory); writes its section of BENCHMARKS.md.
#   2. A one-GPU FSDP run (sharded checkpoints) signalled with SIGUSR2 mid-run (SLURM's warning):
#      it must save last.ckpt (a directory of shards) at the current step and exit 140; the same
#      command again resumes from it and finishes; videomae.models.load reads the sharded file.
#   3. The training loop's cost: train.py, ViT-B pretraining (16x224, tube 0.9, bf16, batch 32)
#      on in-memory clips (data=random: no decoding), eager and compiled, 300 steps; clips/s,
#      step ms and data wait after the first third (against step 0's bare step); the host-device
#      syncs of 50 steps by source line (benchmarks/count_syncs.py). The NVDEC tests, the
#      CUDA test of the channels-last batch layout (pinning and the copy keep the strides) and
#      RandAugment on the GPU (data.rand_augment_on=device: the CPU's pixels, no sync).
#   4. benchmarks/pipeline.py --gpu --compile, the data path in one table (BENCHMARKS.md): on
#      Kinetics-like (340x256 H.264, key frame every 250) and SSv2-like files, decode only, the
#      loader with 15 workers per path (as they are, the videomae-transcode copy, the copy at
#      num_sample 4; NVDEC on the files as they are and on the copy at num_sample 4), the model
#      step, and train.py end to end (compiled like the step) with its data-wait fraction.
#   5. torch.compile under FSDP with activation checkpointing (model.compile=true; `auto` stays
#      eager there until this passes): 20 steps, then relaunched to 30 (resumes); exit codes,
#      recompilations (dynamo's log) and clips/s.
#   6. benchmarks/pipeline.py --gpu --finetune: train.py ViT-B fine-tuning (num_sample 2, 15
#      workers, the transcoded copy) with RandAugment in the workers, then on the device
#      (data.rand_augment_on=device): clips/s and data wait, which decide its default.
# Steps 0-6 take more than one call's 10 minutes and more than one session's 15 minutes of
# device time. By what the open issues need: "0 3", then "4" (the model step, the loop, the data
# path); in a later session "1 2 5 6" (DDP/FSDP table, preemption, compiled FSDP, fine-tuning's
# RandAugment).
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
WANT=()
for arg in "$@"; do
  if [[ "$arg" == "--dry-run" ]]; then DRY=1; else WANT+=("$arg"); fi
done
(( ${#WANT[@]} )) || WANT=(0 1 2 3 4 5 6)
want() { [[ " ${WANT[*]} " == *" $1 "* ]]; }
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
# the loader workers' room (data.num_workers=auto sizes itself to it; 15 workers of 74 MiB
# batches need about 2.2 GiB) and the cores
note "cores $(nproc); /dev/shm $(df -h /dev/shm 2>/dev/null | awk 'NR==2 {print $2 " size, " $4 " free"}')"

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
  --variants ours hf_sdpa explicit ours_dual --profile "$OUTDIR/profiles" > "$OUTDIR/model.log" 2>&1
note "0. model step (ours / HF / explicit / dual masking): exit $?"
grep '^| ' "$OUTDIR/model.log" | tee -a "$SUMMARY"
grep -H 'forward:' "$OUTDIR"/profiles/profile_ours*_b*.txt 2>/dev/null \
  | sed 's|^.*/profile_\([^:]*\)\.txt:|   \1: |' | tee -a "$SUMMARY"
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
  STEPS=30; MODEL=(backbone=tiny trainer=cpu data.num_frames=8 data.img_size=64); BATCH=8
else
  STEPS=300; MODEL=(backbone=vit_b trainer=gpu); BATCH=32
fi
COMMON=(experiment=k400_pretrain "${MODEL[@]}" "+trainer.max_steps=$STEPS" validate=false
        +trainer.limit_val_batches=0 model.optim.warmup_epochs=0 callbacks.reconstruction=null
        callbacks.rich_progress_bar=null logger=csv trainer.log_every_n_steps=10
        extras.print_config=false data=random "data.batch_size=$BATCH" "data.train_batches=$STEPS")
summarize() {  # mean clips/s and data-wait fraction of the logged windows after the first third
  $PY - "$1" <<'EOF'
import csv, glob, sys
rows = [r for f in glob.glob(sys.argv[1] + "/csv/version_*/metrics.csv") for r in csv.DictReader(open(f))]
rows = [r for r in rows if r.get("perf/clips_per_sec")]
rows = rows[len(rows) // 3:] or rows
mean = lambda k: sum(float(r[k]) for r in rows) / max(1, len(rows))
print(f"clips/s {mean('perf/clips_per_sec'):.1f}, step {1000 * mean('perf/step_time_s'):.1f} ms, "
      f"data wait {mean('perf/data_wait_frac'):.1%}, windows {len(rows)}")
EOF
}
note "3. train.py on in-memory clips (data=random, batch $BATCH): the loop over the bare step (step 0)"
for COMPILE in false true; do
  $PY train.py "${COMMON[@]}" "model.compile=$COMPILE" "hydra.run.dir=$WORK/random_$COMPILE" \
    > "$OUTDIR/e2e_random_$COMPILE.log" 2>&1
  note "   model.compile=$COMPILE: exit $?; $(summarize "$WORK/random_$COMPILE")"
done
SYNC=(${COMMON[@]/+trainer.max_steps=$STEPS/+trainer.max_steps=50})
$PY benchmarks/count_syncs.py "${SYNC[@]/data.train_batches=$STEPS/data.train_batches=50}" \
  model.compile=false "hydra.run.dir=$WORK/syncs" > "$OUTDIR/syncs.log" 2>&1
note "   host-device syncs over 50 eager steps (benchmarks/count_syncs.py; exit $?):"
grep -A12 '^synchronizing operations' "$OUTDIR/syncs.log" | sed 's/^/   /' | tee -a "$SUMMARY"
if $PY -c "import pytest" 2>/dev/null; then
  $PY -m pytest -q -p no:cacheprovider tests/test_decoding.py tests/test_layout.py \
    tests/test_transforms.py -k "nvdec or cuda or forked" > "$OUTDIR/nvdec_tests.log" 2>&1
  note "   NVDEC, CUDA-layout and CUDA RandAugment tests: $(tail -1 "$OUTDIR/nvdec_tests.log")"
else
  note "   NVDEC and CUDA tests not run: no pytest (pass 'pytest pluggy iniconfig' to device-wheels.sh)"
fi
fi

if want 4; then
  if (( DRY )); then
    PIPE=(--steps 20 --batches 2 --decode-clips 4 --files 2 --img-size 64)
  else
    PIPE=(--gpu --compile --write)
  fi
  $PY benchmarks/pipeline.py "${PIPE[@]}" > "$OUTDIR/pipeline.log" 2>&1
  note "4. benchmarks/pipeline.py: exit $?"
  grep '^| [0-9]\.' "$OUTDIR/pipeline.log" | sed 's/^/   /' | tee -a "$SUMMARY"
fi

# ---------------------------------------------------------------- 5. compiled under FSDP
if want 5; then
RUN5=$(mktemp -d)/run
if (( DRY )); then
  SIZE5=(backbone=tiny trainer=cpu data.num_frames=8 data.img_size=64 data.batch_size=2)
else
  SIZE5=(backbone=vit_b trainer=fsdp trainer.devices=1 data.batch_size=32)
fi
ARGS5=(experiment=k400_pretrain data=random "${SIZE5[@]}" model.compile=true
       data.train_batches=30 callbacks.step_checkpoint.every_n_train_steps=10
       +trainer.limit_val_batches=0 validate=false model.optim.warmup_epochs=0
       callbacks.reconstruction=null callbacks.rich_progress_bar=null logger=csv
       trainer.log_every_n_steps=5 extras.print_config=false "hydra.run.dir=$RUN5")
for STEPS5 in 20 30; do
  TORCH_LOGS=recompiles $PY train.py "${ARGS5[@]}" "+trainer.max_steps=$STEPS5" \
    > "$OUTDIR/fsdp_compiled_$STEPS5.log" 2>&1
  note "5. compiled under FSDP to step $STEPS5: exit $?; recompilations: $(grep -c 'Recompiling function' "$OUTDIR/fsdp_compiled_$STEPS5.log"); $(grep -o 'resuming from [^ ]*' "$RUN5/train.log" | tail -1)"
done
note "   $($PY - "$RUN5" <<'EOF'
import csv, glob, sys
rows = [r for f in glob.glob(sys.argv[1] + "/csv/version_*/metrics.csv") for r in csv.DictReader(open(f))]
rates = [float(r["perf/clips_per_sec"]) for r in rows if r.get("perf/clips_per_sec")]
print(f"clips/s of the logged windows: {', '.join(f'{x:.0f}' for x in rates)}")
EOF
)"
fi

# ---------------------------------------------------------------- 6. fine-tuning's RandAugment
if want 6; then
  if (( DRY )); then
    FT=(--finetune --steps 40 --files 2 --img-size 64)
  else
    FT=(--gpu --finetune --steps 150 --write)
  fi
  $PY benchmarks/pipeline.py "${FT[@]}" > "$OUTDIR/finetune.log" 2>&1
  note "6. benchmarks/pipeline.py --finetune: exit $?"
  grep '^| 5\.' "$OUTDIR/finetune.log" | sed 's/^/   /' | tee -a "$SUMMARY"
fi

cp BENCHMARKS.md "$OUTDIR/" 2>/dev/null
echo "results in $OUTDIR"
