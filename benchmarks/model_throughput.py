"""Training-step throughput of VideoMAE pretraining: ours vs HF transformers vs explicit attention.

One training step = forward, backward and an AdamW step on the same size, batch and inputs (the
same clips and the same tube masks) for three implementations:

- ``ours``: :class:`videomae.models.VideoMAEPretrain` (attention through PyTorch SDPA);
- ``hf_sdpa``: HF transformers ``VideoMAEForPreTraining`` with ``attn_implementation="sdpa"``;
- ``explicit``: our model with every attention computed as ``softmax(q k^T * scale) v`` in plain
  tensor ops, the way the official VideoMAE code does;
- ``ours_dual`` (ask for it with ``--variants``): ours with VideoMAE V2's dual masking (the
  decoder reconstructs half of the tokens: running-cell masking 0.5).

``--batch`` takes several sizes (a sweep; 0 = the largest that fits), ``--compile`` runs our
variants through ``torch.compile`` (the warm-up steps include the compilation), and AdamW is the
fused kernel on CUDA (as in training). ``--profile DIR`` profiles two more steps of each run and
writes its operators by self time (device time on a GPU) to ``DIR``, headed by the forward time
of our encoder, decoder and loss (where the step's time goes).

Each variant runs in a fresh process (so peak memory is its own) and prints clips/s, the step time,
peak memory (GPU: ``max_memory_allocated``; CPU: the process's peak resident set) and, on a GPU,
MFU = counted FLOPs per step / step time / the device's dense bf16 peak. The table is printed and
written to ``BENCHMARKS.md`` (section "Model throughput") with the machine it ran on.

    python benchmarks/model_throughput.py                       # CPU: tiny and vit_b
    python benchmarks/model_throughput.py --device cuda --sizes vit_b vit_l --precision bf16 \\
        --batch 0                                              # GPU: largest batch that fits
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("ours", "hf_sdpa", "explicit", "ours_dual")
DEFAULT_VARIANTS = ("ours", "hf_sdpa", "explicit")
# dense bf16 tensor-core peaks (FLOP/s) by device-name fragment
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "4090": 165e12}


# ----------------------------------------------------------------------------------- models
def build(variant: str, size: str, img_size: int, num_frames: int, attention: str) -> Any:
    """The model of ``variant`` with the sizes of ``size`` from the registry."""
    from videomae.models.registry import create_pretrain, get_size

    if variant in ("ours", "explicit", "ours_dual"):
        model = create_pretrain(size, img_size=img_size, num_frames=num_frames, attention=attention)
        if variant == "explicit":
            for module in model.modules():
                if hasattr(module, "attend"):
                    module.attend = _explicit_attend.__get__(module)
        return model
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    spec = get_size(size)
    config = VideoMAEConfig(
        image_size=img_size,
        patch_size=spec.patch_size,
        num_frames=num_frames,
        tubelet_size=2,
        hidden_size=spec.embed_dim,
        num_hidden_layers=spec.depth,
        num_attention_heads=spec.num_heads,
        intermediate_size=int(spec.embed_dim * spec.mlp_ratio),
        decoder_hidden_size=spec.decoder_embed_dim,
        decoder_num_hidden_layers=spec.decoder_depth,
        decoder_num_attention_heads=spec.decoder_num_heads,
        decoder_intermediate_size=int(spec.decoder_embed_dim * spec.mlp_ratio),
        norm_pix_loss=True,
        use_mean_pooling=False,
        qkv_bias=True,
    )
    return VideoMAEForPreTraining._from_config(config, attn_implementation="sdpa")


def _explicit_attend(self: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention as the official code writes it: the full (N x N) matrix, softmax, then v."""
    attn = (q * self.scale) @ k.transpose(-2, -1)
    attn = attn.softmax(dim=-1)
    return attn @ v


# ----------------------------------------------------------------------------------- one run
def _step_fn(
    variant: str, model: Any, video: torch.Tensor, mask: Any, counts: Any = None
) -> torch.Tensor:
    """One forward: HF takes the encoder mask; ours the mask pair, as the training module
    passes it (``net(video, pair.encoder, pair.decoder, masking.pair_counts(grid))``)."""
    if variant == "hf_sdpa":
        return model(pixel_values=video.transpose(1, 2), bool_masked_pos=mask.encoder).loss
    loss, _ = model(video, mask.encoder, mask.decoder, counts)
    return loss


def run_variant(args: dict[str, Any]) -> dict[str, Any]:
    """Time ``args['steps']`` training steps of one variant (in this process); return the row."""
    torch.manual_seed(0)
    device = torch.device(args["device"])
    if device.type == "cpu":
        torch.set_num_threads(args["threads"])
    from videomae.models.masking import DualMasking, RunningCellMasking, TubeMasking

    model = build(
        args["variant"], args["size"], args["img_size"], args["num_frames"], args["attention"]
    ).to(device)
    model.train()
    if args.get("compile") and args["variant"] != "hf_sdpa":
        model.compile()
    fused = True if device.type == "cuda" else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=fused)
    batch, frames, img = args["batch"], args["num_frames"], args["img_size"]
    video = torch.randn(batch, 3, frames, img, img, device=device)
    patch = model.config.patch_size if args["variant"] == "hf_sdpa" else model.patch_size
    grid = (frames // 2, img // patch, img // patch)
    masking = TubeMasking(args["ratio"])
    if args["variant"] == "ours_dual":
        masking = DualMasking(masking, RunningCellMasking(0.5))
    mask = masking.pair(batch, grid, device=device)
    counts = masking.pair_counts(grid)
    dtype = torch.bfloat16 if args["precision"] == "bf16" else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = _step_fn(args["variant"], model, video, mask, counts)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args["warmup"]):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args["steps"]):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args["steps"]

    if args.get("profile"):
        profile_steps(args, model, step, sync, device)

    flops = None
    if device.type == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            step()
        flops = counter.get_total_flops()
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "variant": args["variant"],
        "size": args["size"],
        "batch": batch,
        "step_ms": seconds * 1e3,
        "clips_per_s": batch / seconds,
        "peak_mb": peak_mb,
        "flops": flops,
    }


PHASES = ("encoder", "decoder", "forward_loss")
"""Parts of our model whose forward the profile labels (``## <name>``; uncompiled runs)."""


def profile_steps(args: dict[str, Any], model: Any, step: Any, sync: Any, device: Any) -> None:
    """Profile two more steps (torch.profiler, CPU and CUDA) and write the operators by self time
    to ``<profile>/profile_<variant>_<size>_b<batch>.txt``, with the forward time of our
    encoder, decoder and loss (target and error) as labelled ranges."""
    from torch.profiler import ProfilerActivity, profile, record_function

    if args["variant"] != "hf_sdpa" and not args.get("compile"):
        for name in PHASES:
            owner = model if name == "forward_loss" else getattr(model, name)
            inner = owner.forward if name != "forward_loss" else model.forward_loss

            def labelled(*a: Any, _inner: Any = inner, _name: str = name, **k: Any) -> Any:
                with record_function(f"## {_name}"):
                    return _inner(*a, **k)

            setattr(owner, "forward" if name != "forward_loss" else "forward_loss", labelled)
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(2):
            step()
        sync()
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    lines = [f"# {args['variant']} {args['size']} batch {args['batch']}, 2 steps", ""]
    for event in events:
        if event.key.startswith("## "):
            device_ms = getattr(event, "device_time_total", 0) / 1e3 / 2
            lines.append(
                f"{event.key[3:]} forward: {event.cpu_time_total / 1e3 / 2:.1f} ms CPU, "
                f"{device_ms:.1f} ms device, per step"
            )
    lines += ["", events.table(sort_by=sort, row_limit=30)]
    name = f"profile_{args['variant']}_{args['size']}_b{args['batch']}.txt"
    out = Path(args["profile"])
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text("\n".join(lines) + "\n")


def _child(args: dict[str, Any], queue: Any) -> None:
    try:
        queue.put(run_variant(args))
    except torch.OutOfMemoryError:
        queue.put({"oom": True})
    except Exception as error:  # reported in the table, the other variants still run
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_isolated(args: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_variant` in a fresh process (its own peak memory, no state left behind)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def largest_batch(args: dict[str, Any], start: int = 8, limit: int = 1024) -> int:
    """The largest power-of-two batch that runs without running out of memory (GPU)."""
    best, batch = 0, start
    while batch <= limit:
        result = run_isolated({**args, "batch": batch, "steps": 1, "warmup": 1})
        if "oom" in result or "error" in result:
            break
        best, batch = batch, batch * 2
    return best


# ----------------------------------------------------------------------------------- report
def machine() -> str:
    """One line naming the machine: CPU model and cores, GPU, torch version."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores; {gpu}; torch {torch.__version__}"


def _ratio(row: dict[str, Any], by_variant: dict[str, dict[str, Any]], other: str) -> str:
    """``row``'s clips/s over ``other``'s, as ``1.23x`` (empty when ``other`` did not run)."""
    o = by_variant.get(other)
    if not o or "clips_per_s" not in o:
        return ""
    return f"{row['clips_per_s'] / o['clips_per_s']:.2f}x"


def table(rows: list[dict[str, Any]], args: argparse.Namespace, device_name: str) -> str:
    """Markdown table with ratios against ``explicit`` and ``hf_sdpa`` per size."""
    peak = next((v for k, v in PEAK_BF16.items() if k in device_name), None)
    lines = [
        "| size | variant | batch | step ms | clips/s | vs explicit | vs HF | peak MiB | MFU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for size, batch in dict.fromkeys((r["size"], r["batch_asked"]) for r in rows):
        here = [r for r in rows if r["size"] == size and r["batch_asked"] == batch]
        by_variant = {r["variant"]: r for r in here}
        for variant in VARIANTS:
            r = by_variant.get(variant)
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {size} | {variant} | | failed: {r['error'][:80]} | | | | | |")
                continue

            mfu = ""
            if r.get("flops") and peak and args.precision == "bf16":
                mfu = f"{r['flops'] / (r['step_ms'] / 1e3) / peak:.1%}"
            lines.append(
                f"| {size} | {variant} | {r['batch']} | {r['step_ms']:.1f} | "
                f"{r['clips_per_s']:.2f} | {_ratio(r, by_variant, 'explicit')} | "
                f"{_ratio(r, by_variant, 'hf_sdpa')} | "
                f"{r['peak_mb']:.0f} | {mfu} |"
            )
    return "\n".join(lines)


def commit() -> str:
    """The checkout's short commit hash ("?" outside git)."""
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return result.stdout.strip() or "?"


def src_env(src: Path) -> dict[str, str]:
    """This process's environment with ``src`` (a checkout's ``src`` folder) first on
    ``PYTHONPATH``, the rest kept (where the dependencies are installed with ``--target``, as
    on the lent GPU machine, they are on it)."""
    paths = [str(src), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def publish(section: str, lines: list[str], write: bool) -> None:
    """Print the report ``lines`` and, with ``write``, put them in BENCHMARKS.md as ``section``."""
    table = "\n".join(lines) + "\n"
    print(table)
    if write:
        write_benchmarks_md(section, table)


def write_benchmarks_md(section: str, body: str) -> None:
    """Replace (or add) ``## section`` in BENCHMARKS.md with ``body``."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    header = f"## {section}"
    if header in text:
        start = text.index(header)
        end = text.find("\n## ", start + len(header))
        text = text[:start] + body + ("" if end < 0 else text[end:])
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    """Parse options, run every size x variant, print the table, write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "vit_b"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[2], help="per step (several: a sweep); 0 = the "
        "largest that fits"
    )  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile our variants")
    parser.add_argument(
        "--profile", default=None, metavar="DIR", help="write a torch.profiler table per run here"
    )
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--ratio", type=float, default=0.9)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--attention", default="auto")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--section", default=None, help="BENCHMARKS.md section name")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    rows = []
    for size in args.sizes:
        base = {
            "size": size,
            "device": args.device,
            "img_size": args.img_size,
            "num_frames": args.num_frames,
            "ratio": args.ratio,
            "precision": args.precision,
            "attention": args.attention,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "compile": args.compile,
            "profile": args.profile,
        }
        for asked in args.batch:
            batch = asked or largest_batch({**base, "variant": "explicit"})
            for variant in args.variants:
                result = run_isolated({**base, "variant": variant, "batch": batch})
                if "oom" in result:
                    result = {"error": f"out of memory at batch {batch}"}
                rows.append({"size": size, "variant": variant, "batch_asked": asked, **result})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    text = table(rows, args, device_name)
    print(text)
    if not args.no_write:
        section = args.section or f"Model throughput ({args.device}, {args.precision})"
        body = (
            f"## {section}\n\n"
            f"`python benchmarks/model_throughput.py {' '.join(argv or sys.argv[1:])}` at "
            f"{commit()} on {machine()}. One step = forward + backward + AdamW, "
            f"{args.num_frames} x {args.img_size} x {args.img_size}, tube masking {args.ratio}"
            f"{', torch.compile' if args.compile else ''}, "
            f"same inputs for every variant, {args.steps} timed steps after {args.warmup} "
            "warm-up; each variant in its own process. Ratios are clips/s against the named "
            "variant in the same run.\n\n"
            f"{text}\n"
        )
        write_benchmarks_md(section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
