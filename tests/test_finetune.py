"""Fine-tuning: layer decay, mixup, multi-view test averaging, init_from, linear probing, EMA.

Fast tests run the tiny classifier at 32 px and 4 frames on random tensors through a small fake
DataModule; the end-to-end pretrain -> fine-tune -> test run on the generated video set is
marked ``slow``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from timm.data import Mixup
from timm.optim import param_groups_layer_decay as timm_groups
from torch.utils.data import DataLoader, Dataset

from videomae import checkpoints
from videomae.checkpoints.transfer import init_classifier_from
from videomae.eval_outputs import average_views, classification_metrics, first_occurrences
from videomae.models.registry import create_classifier, create_pretrain
from videomae.modules.finetune import FinetuneModule, mix_video
from videomae.modules.optim import param_groups_layer_decay, vit_layer_id
from videomae.modules.schedules import clean_param_name

GEOMETRY = {"img_size": 32, "num_frames": 4}
NUM_CLASSES = 4
OPTIM = {
    "base_lr": 0.05,
    "warmup_lr": 0.0,
    "min_lr": 0.0,
    "warmup_steps": 1,
    "weight_decay": 0.05,
    "layer_decay": 0.75,
}


def tiny_classifier(**overrides) -> torch.nn.Module:
    """The tiny classifier at the test geometry."""
    return create_classifier("tiny", NUM_CLASSES, **{**GEOMETRY, **overrides})


class ClipSet(Dataset):
    """Random clips whose label is readable from the mean brightness (so a model can learn it);
    ``views`` > 0 gives test items ``(V, C, T, H, W)``; ``order`` repeats indices (DDP padding)."""

    def __init__(self, n: int, views: int = 0, order: list[int] | None = None) -> None:
        self.n = n
        self.views = views
        self.order = order or list(range(n))

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        index = self.order[i]
        label = index % NUM_CLASSES
        g = torch.Generator().manual_seed(index)
        shape = (3, GEOMETRY["num_frames"], GEOMETRY["img_size"], GEOMETRY["img_size"])
        if self.views:
            shape = (self.views, *shape)
        video = torch.randn(shape, generator=g) * 0.1 + (label - 1.5)
        return {"video": video, "label": torch.tensor(label), "index": torch.tensor(index)}


class FakeRecord:
    """A test-list record with a path (what the module reads for predictions.csv)."""

    def __init__(self, i: int) -> None:
        self.path = Path(f"/videos/v{i}.mp4")


class FakeDataModule(L.LightningDataModule):
    """Train / val batches of single clips, test batches of ``views`` views per video."""

    def __init__(self, n: int = 8, views: int = 3, test_order: list[int] | None = None) -> None:
        super().__init__()
        self.n, self.views, self.test_order = n, views, test_order
        self.class_names = [f"class_{k}" for k in range(NUM_CLASSES)]
        self.test_set = ClipSet(n, views, test_order)
        self.test_set.records = [FakeRecord(i) for i in range(n)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(ClipSet(self.n), batch_size=4, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(ClipSet(self.n), batch_size=4)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_set, batch_size=3)


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    """A quiet CPU trainer writing into tmp_path."""
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
    }
    return L.Trainer(**{**defaults, **kwargs})


# ---------------------------------------------------------------------------- layer decay
def test_layer_decay_scale_of_each_block() -> None:
    net = tiny_classifier()
    depth = len(net.blocks)  # 4
    decay = 0.5
    groups = param_groups_layer_decay(
        net, weight_decay=0.05, no_decay=net.no_weight_decay(), layer_decay=decay, depth=depth
    )
    names = {id(p): n for n, p in net.named_parameters()}
    scale = {names[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert len(scale) == sum(1 for _ in net.parameters())
    assert scale["patch_embed.proj.weight"] == (decay**5, 0.05)
    assert scale["patch_embed.proj.bias"] == (decay**5, 0.0)
    for i in range(depth):
        assert scale[f"blocks.{i}.attn.qkv.weight"] == (decay ** (depth - i), 0.05)
        assert scale[f"blocks.{i}.mlp.fc2.weight"] == (decay ** (depth - i), 0.05)
        assert scale[f"blocks.{i}.norm1.weight"] == (decay ** (depth - i), 0.0)
        assert scale[f"blocks.{i}.attn.q_bias"] == (decay ** (depth - i), 0.0)
    assert scale["fc_norm.weight"] == (1.0, 0.0)
    assert scale["head.weight"] == (1.0, 0.05)
    assert scale["head.bias"] == (1.0, 0.0)
    # timm's layer-decay groups (with the classifier's group_matcher) agree name by name
    reference = timm_groups(net, 0.05, net.no_weight_decay(), layer_decay=decay)
    theirs = {
        names[id(p)]: (g["lr_scale"], g["weight_decay"]) for g in reference for p in g["params"]
    }
    assert {k: (pytest.approx(v[0]), v[1]) for k, v in theirs.items()} == scale


def test_layer_decay_learned_pos_embed_and_wrapped_names() -> None:
    net = tiny_classifier(learnable_pos_embed=True)
    assert "pos_embed" in net.no_weight_decay()
    groups = param_groups_layer_decay(
        net, weight_decay=0.1, no_decay=net.no_weight_decay(), layer_decay=0.75, depth=4
    )
    (group,) = [g for g in groups if any(p is net.pos_embed for p in g["params"])]
    assert group["lr_scale"] == pytest.approx(0.75**5) and group["weight_decay"] == 0.0
    for wrapped in ("_orig_mod.blocks.2.mlp.fc1.weight", "module._fsdp_wrapped_module.blocks.2.x"):
        assert vit_layer_id(clean_param_name(wrapped), 4) == 3
    assert vit_layer_id("encoder.blocks.0.norm1.weight", 4) == 1
    assert vit_layer_id("encoder.patch_embed.proj.weight", 4) == 0


def test_optimizer_lrs_follow_the_layer_scales(tmp_path: Path) -> None:
    module = FinetuneModule(tiny_classifier(), batch_size=4, optim=OPTIM, mixup=None)
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, datamodule=FakeDataModule())
    optimizer = module.optimizers().optimizer
    peak = OPTIM["base_lr"] * 4 / 256
    head = optimizer.param_groups[-1]
    assert head["lr_scale"] == 1.0
    # step 2 of a 2-step run: the cosine has reached min_lr 0 for every group
    for group in optimizer.param_groups:
        assert group["initial_lr"] == pytest.approx(peak * group["lr_scale"])
        assert group["lr"] == pytest.approx(0.0, abs=1e-12)
    assert min(g["lr_scale"] for g in optimizer.param_groups) == pytest.approx(0.75**5)


# ---------------------------------------------------------------------------- mixup
def test_mixup_targets_sum_to_one_and_cutmix_cuts_every_frame_alike() -> None:
    torch.manual_seed(0)
    video = torch.arange(4.0)[:, None, None, None, None].expand(4, 3, 5, 16, 16).clone()
    labels = torch.tensor([0, 1, 2, 3])
    for cutmix in (True, False):
        mixup = Mixup(
            mixup_alpha=0.0 if cutmix else 0.8,
            cutmix_alpha=1.0 if cutmix else 0.0,
            label_smoothing=0.1,
            num_classes=6,
        )
        mixed, target = mix_video(mixup, video.clone(), labels)
        assert mixed.shape == video.shape and target.shape == (4, 6)
        torch.testing.assert_close(target.sum(dim=1), torch.ones(4))
        assert (target >= 0).all()
        # every channel and frame of a clip got the same mix
        torch.testing.assert_close(mixed, mixed[:, :1, :1].expand_as(mixed))
    # with the official settings (switch between the two) the targets still sum to one
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, num_classes=6)
    for _ in range(5):
        _, target = mix_video(mixup, video.clone(), labels)
        torch.testing.assert_close(target.sum(dim=1), torch.ones(4))
    with pytest.raises(ValueError, match="even number of clips"):
        mix_video(mixup, video[:3].clone(), labels[:3])


def test_cutmix_target_weight_is_the_pasted_area() -> None:
    torch.manual_seed(1)
    video = torch.zeros(2, 3, 4, 16, 16)
    video[1] = 1.0
    mixup = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=2)
    mixed, target = mix_video(mixup, video, torch.tensor([0, 1]))
    kept = (mixed[0] == 0).float().mean()  # clip 0 keeps its pixels outside the pasted box
    torch.testing.assert_close(target[0, 0], kept)


# ---------------------------------------------------------------------------- multi-view test
def test_view_average_equals_hand_computation() -> None:
    logits = torch.tensor(
        [
            [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]],  # video 0, two views
            [[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]],  # video 1
        ]
    )

    def softmax(row: list[float]) -> list[float]:
        exps = [math.exp(v) for v in row]
        return [e / sum(exps) for e in exps]

    expected = [
        [(a + b) / 2 for a, b in zip(softmax(v[0]), softmax(v[1]), strict=True)]
        for v in logits.tolist()
    ]
    torch.testing.assert_close(average_views(logits), torch.tensor(expected))
    # averaging probabilities, not logits: the two differ here
    assert not torch.allclose(average_views(logits), logits.mean(1).softmax(-1))


def test_first_occurrences_and_metrics_by_hand() -> None:
    index = torch.tensor([3, 0, 1, 3, 2, 0])  # padded by a distributed sampler
    keep = first_occurrences(index)
    assert index[keep].tolist() == [0, 1, 2, 3]
    assert keep.tolist() == [1, 2, 4, 0]
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 2, 2, 1])
    metrics = classification_metrics(probs, labels, top_k=2)
    assert metrics["acc1"] == pytest.approx(3 / 4)  # video 1 predicted 1, true 2
    assert metrics["acc5"] == pytest.approx(1.0)  # top-2
    # per class: class 0 1/1, class 1 1/1, class 2 1/2 -> mean 5/6
    assert metrics["per_class"].tolist() == pytest.approx([1.0, 1.0, 0.5])
    assert metrics["mean_class_acc"] == pytest.approx(5 / 6)
    assert metrics["confusion"].tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]


def test_test_loop_averages_views_counts_each_video_once_and_writes_files(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    module = FinetuneModule(tiny_classifier(), batch_size=4, optim=OPTIM, mixup=None)
    order = [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]  # two videos repeated, as DDP padding does
    datamodule = FakeDataModule(n=8, views=3, test_order=order)
    results = trainer(tmp_path).test(module, datamodule=datamodule, verbose=False)[0]
    out = module.test_results
    assert out["index"].tolist() == list(range(8))
    # by hand: every view through the network, softmax, mean
    module.net.eval()
    with torch.no_grad():
        expected = torch.stack(
            [module.net(datamodule.test_set[i]["video"]).softmax(-1).mean(0) for i in range(8)]
        )
    torch.testing.assert_close(out["probs"], expected, rtol=1e-4, atol=1e-6)
    labels = torch.arange(8) % NUM_CLASSES
    acc1 = (expected.argmax(1) == labels).double().mean().item()
    assert results["test/acc1"] == pytest.approx(acc1)
    assert set(results) == {"test/acc1", "test/acc5", "test/mean_class_acc"}

    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(rows) == 8
    assert rows[2]["video"] == "/videos/v2.mp4" and rows[2]["label_name"] == "class_2"
    top = expected[2].topk(4)
    assert int(rows[2]["pred_1"]) == int(top.indices[0])
    assert rows[2]["pred_name_1"] == f"class_{int(top.indices[0])}"
    assert float(rows[2]["score_1"]) == pytest.approx(float(top.values[0]), abs=1e-5)
    per_class = list(csv.DictReader((tmp_path / "per_class_accuracy.csv").open()))
    assert [int(r["videos"]) for r in per_class] == [2, 2, 2, 2]
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------------- init_from
@pytest.fixture(scope="module")
def pretrained() -> torch.nn.Module:
    """A tiny pretraining network with non-default weights."""
    torch.manual_seed(3)
    net = create_pretrain("tiny", **GEOMETRY)
    with torch.no_grad():
        for param in net.parameters():
            param.add_(torch.randn_like(param) * 0.01)
    return net


def _assert_encoder_copied(net: torch.nn.Module, pretrained: torch.nn.Module) -> None:
    for name, tensor in pretrained.encoder.state_dict().items():
        if name.startswith(("norm.", "head.")):
            continue  # the final encoder norm is replaced by mean pooling + fc_norm
        torch.testing.assert_close(net.state_dict()[name], tensor, msg=name)


@pytest.mark.parametrize("fmt", ["official", "hf", "lightning"])
def test_init_from_pretraining_checkpoint(
    tmp_path: Path, pretrained: torch.nn.Module, fmt: str
) -> None:
    if fmt == "official":
        path = tmp_path / "checkpoint-799.pth"
        torch.save({"model": pretrained.state_dict(), "epoch": 799}, path)
    elif fmt == "hf":
        path = checkpoints.save_hf(pretrained, tmp_path / "hf")
    else:
        path = tmp_path / "last.ckpt"
        state = {f"net.{k}": v for k, v in pretrained.state_dict().items()}
        meta = {"kind": "pretrain", "config": dict(pretrained.config)}
        torch.save({"state_dict": state, "videomae": meta}, path)
    # a different clip size than the pretraining one: the position table is rebuilt
    kwargs = {"img_size": 48, "num_frames": 8} if fmt == "official" else {}
    net = tiny_classifier(**kwargs)
    head_before = net.head.weight.clone()
    module = FinetuneModule(net, batch_size=4, optim=OPTIM, init_from=str(path))
    _assert_encoder_copied(module.net, pretrained)
    torch.testing.assert_close(module.net.head.weight, head_before)  # the new head is kept
    assert {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"} <= set(
        module.init_report["missing"]
    )
    assert module.init_report["unexpected"] == []
    assert module(torch.randn(2, 3, net.num_frames, *[net.img_size] * 2)).shape == (2, 4)


def test_init_from_missing_encoder_weight_names_it(
    tmp_path: Path, pretrained: torch.nn.Module
) -> None:
    state = dict(pretrained.state_dict())
    del state["encoder.blocks.1.mlp.fc1.weight"]
    path = tmp_path / "broken.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp\.fc1\.weight") as info:
        FinetuneModule(tiny_classifier(), batch_size=4, optim=OPTIM, init_from=str(path))
    assert "model.init_from" in str(info.value)


def test_init_from_finetuned_checkpoint_keeps_a_fitting_head(tmp_path: Path) -> None:
    source = tiny_classifier()
    with torch.no_grad():
        source.head.weight.fill_(0.5)
    path = tmp_path / "ft.pth"
    torch.save({"model": source.state_dict()}, path)
    net = tiny_classifier()
    report = init_classifier_from(net, path)
    torch.testing.assert_close(net.head.weight, source.head.weight)
    assert report == {"missing": [], "unexpected": []}
    other = create_classifier("tiny", 7, **GEOMETRY)  # another class count: a fresh head
    report = init_classifier_from(other, path)
    assert "head.weight" in report["missing"]
    assert not torch.equal(other.head.weight[:4], source.head.weight)


def test_classifier_without_fc_norm_pools_plainly_loads_and_refuses_hf(
    tmp_path: Path, pretrained: torch.nn.Module
) -> None:
    net = tiny_classifier(use_fc_norm=False)
    assert net.config["use_fc_norm"] is False and tiny_classifier().config["use_fc_norm"] is True
    assert not any(k.startswith("fc_norm.") for k in net.state_dict())
    video = torch.randn(2, 3, GEOMETRY["num_frames"], *[GEOMETRY["img_size"]] * 2)
    net.eval()
    with torch.no_grad():
        mean = net.forward_tokens(net.embed(video)).mean(dim=1)
        torch.testing.assert_close(net.forward_features(video), mean)
        torch.testing.assert_close(net(video), net.head(mean))

    # from a pretraining checkpoint: the encoder, nothing unexpected, only the head is new
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": pretrained.state_dict()}, path)
    report = init_classifier_from(net, path)
    assert sorted(report["missing"]) == ["head.bias", "head.weight"]
    assert report["unexpected"] == []
    _assert_encoder_copied(net, pretrained)
    # from a fine-tuned checkpoint that has one: its fc_norm is reported and left out
    finetuned = tmp_path / "ft.pth"
    torch.save({"model": tiny_classifier().state_dict()}, finetuned)
    report = init_classifier_from(tiny_classifier(use_fc_norm=False), finetuned)
    assert report == {"missing": [], "unexpected": ["fc_norm.weight", "fc_norm.bias"]}

    # a bare state dict (official layout) of such a model: no fc_norm, so none is built
    bare = tmp_path / "bare.pth"
    torch.save({"model": net.state_dict()}, bare)
    reloaded = checkpoints.load(bare)
    assert reloaded.fc_norm is None and reloaded.config["use_fc_norm"] is False
    assert checkpoints.load(finetuned).fc_norm is not None
    with pytest.raises(ValueError, match="use_fc_norm=False needs use_mean_pooling=True"):
        tiny_classifier(use_fc_norm=False, use_mean_pooling=False)

    # the portable format keeps the option; HF's cannot express it
    portable = checkpoints.save_portable(net, tmp_path / "net.safetensors")
    loaded = checkpoints.load(portable)
    assert loaded.fc_norm is None and loaded.config["use_fc_norm"] is False
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), net(video))
    with pytest.raises(ValueError, match=r"fc_norm.*use_fc_norm=false"):
        checkpoints.save_hf(net, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


# ---------------------------------------------------------------------------- probing, EMA
def test_linear_probe_trains_only_the_normalized_head(tmp_path: Path) -> None:
    net = tiny_classifier()
    module = FinetuneModule(net, batch_size=4, optim=OPTIM, mixup=None, freeze_encoder=True)
    assert isinstance(net.head_norm, torch.nn.BatchNorm1d) and not net.head_norm.affine
    assert net.config["head_norm"] == "batchnorm"
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    before = {n: t.clone() for n, t in net.state_dict().items()}
    modes: list[tuple[str, bool]] = []
    for part in ("head_norm", "head"):
        getattr(net, part).register_forward_pre_hook(
            lambda module, args, part=part: modes.append((part, module.training))
        )
    net.blocks[0].register_forward_pre_hook(lambda m, a: modes.append(("blocks", m.training)))
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(module, datamodule=FakeDataModule())
    # the frozen encoder runs in eval mode (no dropout / drop path), the head in train mode
    assert modes == [("blocks", False), ("head_norm", True), ("head", True)] * 2
    after = net.state_dict()
    for name, tensor in before.items():
        changed = not torch.equal(after[name], tensor)
        assert changed == name.startswith(("head.", "head_norm.running", "head_norm.num")), name


def test_fit_with_mixup_and_ema_validates_and_saves_a_loadable_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = FinetuneModule(
        tiny_classifier(),
        batch_size=4,
        optim=OPTIM,
        mixup={"mixup_alpha": 0.8, "cutmix_alpha": 1.0, "switch_prob": 0.5},
        ema={"decay": 0.5},
    )
    fit = trainer(tmp_path, max_steps=3, enable_checkpointing=True, limit_val_batches=1)
    fit.fit(module, datamodule=FakeDataModule())
    metrics = fit.callback_metrics
    assert {"train/loss_epoch", "val/loss", "val/acc1", "val/acc5"} <= set(metrics)
    assert 0.0 <= float(metrics["val/acc1"]) <= 1.0
    (ckpt,) = (tmp_path / "checkpoints").glob("*.ckpt")
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert raw["videomae"]["kind"] == "classifier"
    assert raw["videomae"]["class_names"] == [f"class_{k}" for k in range(NUM_CLASSES)]
    ema_state = {k: v for k, v in raw["state_dict"].items() if k.startswith("ema.module.")}
    assert ema_state and not torch.equal(
        ema_state["ema.module.head.weight"], raw["state_dict"]["net.head.weight"]
    )
    loaded = checkpoints.load(ckpt)
    torch.testing.assert_close(loaded.head.weight, module.net.head.weight)


def test_fit_start_reports_batch_and_lr_to_the_log_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The random-encoder warning, then the batch/lr line with the layer decay, on the
    fine-tuning module's logger; nothing goes to the loggers (pretraining sends them these)."""
    from lightning.pytorch.loggers import CSVLogger

    csv_logger = CSVLogger(tmp_path)
    module = FinetuneModule(tiny_classifier(), batch_size=4, optim=OPTIM)
    module.trainer = trainer(tmp_path, logger=csv_logger)
    with caplog.at_level("INFO", logger="videomae.modules.finetune"):
        module.on_fit_start()
    lines = [r.getMessage() for r in caplog.records if r.name == "videomae.modules.finetune"]
    assert len(lines) == 2 and lines[0].startswith("model.init_from is null")
    assert lines[1] == (
        "batch: 4 videos per device, 4 global; peak lr 0.000781 (base 0.05 x 4 / 256), "
        "layer decay 0.75"
    )
    assert csv_logger.experiment.metrics == []


@pytest.mark.slow
def test_ddp_test_counts_each_video_once(tmp_path: Path) -> None:
    """Two CPU processes: the distributed sampler pads 7 videos to 8; the gathered predictions
    hold each video once and equal a single-process run."""
    torch.manual_seed(0)
    module = FinetuneModule(tiny_classifier(), batch_size=4, optim=OPTIM, mixup=None)
    single = tmp_path / "single"
    trainer(single).test(module, datamodule=FakeDataModule(n=7), verbose=False)
    ddp = tmp_path / "ddp"
    results = trainer(ddp, devices=2, strategy="ddp_spawn").test(
        module, datamodule=FakeDataModule(n=7), verbose=False
    )[0]
    rows = list(csv.DictReader((ddp / "predictions.csv").open()))
    assert [r["video"] for r in rows] == [f"/videos/v{i}.mp4" for i in range(7)]
    expected = list(csv.DictReader((single / "predictions.csv").open()))
    for row, ref in zip(rows, expected, strict=True):
        assert row["pred_1"] == ref["pred_1"]
        assert float(row["score_1"]) == pytest.approx(float(ref["score_1"]), abs=1e-5)
    acc1 = sum(r["pred_1"] == r["label"] for r in rows) / 7
    assert results["test/acc1"] == pytest.approx(acc1)
