#!/usr/bin/env bash
# Every check that needs a GPU, in one command (sized for one H200 and a few minutes):
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine (see below for the wheels)
#   bash benchmarks/gpu_check.sh --dry-run  # the same steps on this machine's CPU, tiny sizes
#
# On the lent GPU machine (which lacks Hydra, OmegaConf, decord, PyAV, python-dotenv): run
# `../shared/tools/device-wheels.sh` here first, carry `.whl`, and the script installs them into
# /tmp/site and imports the project from src/. Results (BENCHMARKS.md, logs, summary.txt) go to
# $OUT when it is set, else to logs/gpu_check/.
#
# Steps:
#   1. benchmarks/fsdp_vs_ddp.py on one GPU: ViT-L pretraining under DDP and FSDP on in-memory
#      clips (clips/s, MFU, peak memory); writes its section of BENCHMARKS.md.
#   2. A one-GPU FSDP run (sharded checkpoints) signalled with SIGUSR2 mid-run (SLURM's warning):
#      it must save last.ckpt (a directory of shards) at the current step and exit 140; the same
#      command again resumes from it and finishes; videomae.models.load reads the sharded file.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
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

# ---------------------------------------------------------------- 1. DDP vs FSDP (ViT-L)
if (( DRY )); then
  timeout 600 $PY benchmarks/fsdp_vs_ddp.py --dry-run --steps 20 --batch 2 > "$OUTDIR/fsdp_vs_ddp.log" 2>&1
else
  timeout 420 $PY benchmarks/fsdp_vs_ddp.py --devices 1 --batch 16 --steps 30 > "$OUTDIR/fsdp_vs_ddp.log" 2>&1
fi
note "1. fsdp_vs_ddp: exit $? ($(grep -c '^| ' "$OUTDIR/fsdp_vs_ddp.log") table rows)"
grep '^| ' "$OUTDIR/fsdp_vs_ddp.log" | tee -a "$SUMMARY"

# ---------------------------------------------------------------- 2. preempted FSDP run resumes
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
from videomae.checkpoints import _torch_load, is_sharded_checkpoint
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
from videomae.checkpoints import _torch_load, is_sharded_checkpoint
from videomae.models import load
path = Path(sys.argv[1])
meta = _torch_load(path / "meta.pt" if is_sharded_checkpoint(path) else path)
model = load(path)
print(meta["global_step"], type(model).__name__, sum(p.numel() for p in model.parameters()))
EOF
)
note "   final last.ckpt: step, model, parameters: $END (expected step 300)"
cp "$RUN/train.log" "$OUTDIR/preempt_train.log" 2>/dev/null
cp BENCHMARKS.md "$OUTDIR/" 2>/dev/null
echo "results in $OUTDIR"
