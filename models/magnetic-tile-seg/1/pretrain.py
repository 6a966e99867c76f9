#!/usr/bin/python3
"""Pretrains the encoder of train.py's TileUNet on the project's other two data sets, for members that start from it.

No pretrained weights can be had offline, and the one third-party network here (the NEU YOLOv8 detector) is AGPL and
int8. What can be had: the 1770 NEU-DET steel images (6 defect classes) and the casting photos (good / defective), grey
industrial surfaces like the tiles. The encoder (the stem and the three pooled levels, e1..e4) learns both image-level
tasks at once: a global average pool of its deepest map, one linear head per data set, cross-entropy on each. None of
the magnetic-tile images is read here, so the tile split stays untouched.

Writes, for each --seeds value, <out>/init-<seed>.pt: a whole TileUNet state_dict whose encoder holds the pretrained
weights and whose decoder and head are the fresh ones torch.manual_seed(seed) gives (as train.py would build them).
train.py --init <that file> --seed <seed> then trains the member as usual.

Tried once (README, "What was tried", item 8): members started from it learnt faster and ended no better than
members trained from scratch; the shipped package does not use it.

    nice -n 19 /usr/bin/python3 models/magnetic-tile-seg/1/pretrain.py --out /tmp/mtseg/pre --seeds 301 302 303
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import train as T  # noqa: E402  (TileUNet, the input spec's normalisation)

ENCODER = ("e1.", "e2.", "e3.", "e4.")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default=str(T.ROOT.parent / "shared/datasets"))
    p.add_argument("--spec", default=str(HERE / "input.json"))
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--steps", type=int, default=100, help="batches per epoch, each half NEU and half casting")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=20261130)
    p.add_argument("--seeds", type=int, nargs="+", required=True, help="member seeds to write init files for")
    return p.parse_args()


def held_out(name: str) -> bool:
    """One image in ten, by sha256 of its name: to see that the encoder learns, not to choose anything."""
    return hashlib.sha256(name.encode()).digest()[0] < 26


def load(files: list[Path], size: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(f).convert("L").resize((size, size), Image.BILINEAR), dtype=np.uint8) for f in files])


class Encoder(nn.Module):
    def __init__(self, net: T.TileUNet, classes: dict[str, int]) -> None:
        super().__init__()
        self.e1, self.e2, self.e3, self.e4 = net.e1, net.e2, net.e3, net.e4
        width = net.e4[-3].out_channels
        self.heads = nn.ModuleDict({k: nn.Linear(width, n) for k, n in classes.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.e4(self.e3(self.e2(self.e1(x)))).mean((2, 3))


def augment(u8: torch.Tensor, gen: torch.Generator, spec: dict) -> torch.Tensor:
    """Flips, a random crop of 60-100 % of the side resized back, gain/offset jitter."""
    b, h, w = u8.shape
    x = u8.float().unsqueeze(1) * float(spec["scale"])
    flip_h = torch.rand(b, generator=gen) < 0.5
    flip_v = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    s = 0.6 + 0.4 * torch.rand(b, generator=gen)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = s
    theta[:, 1, 1] = s
    theta[:, 0, 2] = (torch.rand(b, generator=gen) * 2 - 1) * (1 - s)
    theta[:, 1, 2] = (torch.rand(b, generator=gen) * 2 - 1) * (1 - s)
    x = F.grid_sample(x, F.affine_grid(theta, [b, 1, h, w], align_corners=False), mode="bilinear", padding_mode="reflection", align_corners=False)
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.3
    bias = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.1
    x = (x * gain + bias).clamp(0.0, 1.0)
    return (x - float(spec["mean"][0])) / float(spec["std"][0])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    spec = json.loads(Path(args.spec).read_text())
    size = spec["width"]
    ds = Path(args.datasets)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    neu_files = sorted((ds / "neu-det/IMAGES").glob("*.jpg"))
    neu_classes = sorted({f.stem.rsplit("_", 1)[0] for f in neu_files})
    cast_files = sorted((ds / "casting/train").glob("*/*.jpeg"))
    cast_classes = sorted({f.parent.name for f in cast_files})
    tasks = {}
    for task, files, label_of, classes in (("neu", neu_files, lambda f: f.stem.rsplit("_", 1)[0], neu_classes),
                                          ("casting", cast_files, lambda f: f.parent.name, cast_classes)):
        y = np.asarray([classes.index(label_of(f)) for f in files])
        hold = np.asarray([held_out(f.name) for f in files])
        x = load(files, size)
        tasks[task] = {"classes": classes, "xtr": torch.from_numpy(x[~hold]), "ytr": torch.from_numpy(y[~hold]),
                       "xho": x[hold], "yho": y[hold]}
        print(f"{task}: {len(files)} images, {int(hold.sum())} held out, classes {classes}", flush=True)
    print(f"loaded in {time.time() - t0:.0f}s", flush=True)

    net = T.TileUNet()
    enc = Encoder(net, {k: len(v["classes"]) for k, v in tasks.items()})
    opt = torch.optim.AdamW(enc.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=args.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    half = args.batch // 2
    history = []
    for epoch in range(1, args.epochs + 1):
        enc.train()
        te = time.time()
        loss_sum = 0.0
        for _ in range(args.steps):
            # One forward pass over both halves: BatchNorm's batch statistics are then those of the mix its running
            # statistics average, so eval mode sees what training saw (one pass per task left the casting head at chance).
            picks = {task: torch.randint(0, len(t["ytr"]), (half,), generator=gen) for task, t in tasks.items()}
            f = enc.features(augment(torch.cat([t["xtr"][picks[k]] for k, t in tasks.items()]), gen, spec))
            loss = sum(F.cross_entropy(enc.heads[k](f[i * half:(i + 1) * half]), t["ytr"][picks[k]]) for i, (k, t) in enumerate(tasks.items()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss)
        enc.eval()
        acc = {}
        with torch.no_grad():
            for task, t in tasks.items():
                pred = torch.cat([enc.heads[task](enc.features(T.to_tensor(t["xho"][i:i + 64], spec))).argmax(1) for i in range(0, len(t["xho"]), 64)])
                acc[task] = round(float((pred.numpy() == t["yho"]).mean()), 4)
        row = {"epoch": epoch, "loss": round(loss_sum / args.steps, 4), "heldOutAccuracy": acc, "seconds": round(time.time() - te, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)

    encoder = {k: v for k, v in net.state_dict().items() if k.startswith(ENCODER)}
    for seed in args.seeds:
        torch.manual_seed(seed)
        fresh = T.TileUNet().state_dict()
        fresh.update(encoder)
        torch.save(fresh, out / f"init-{seed}.pt")
    (out / "pretrain.json").write_text(json.dumps({"command": " ".join(sys.argv), "seed": args.seed, "history": history,
                                                   "trainSeconds": round(time.time() - t0, 1)}, indent=1))
    print(f"wrote {', '.join(f'init-{s}.pt' for s in args.seeds)} in {out}", flush=True)


if __name__ == "__main__":
    main()
