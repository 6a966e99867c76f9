#!/usr/bin/python3
"""Trains, exports and documents models/casting-cls/1 (cast pump impeller pass/fail).

Reads the images as the station will see them: PNGs written by
models/tools/prepare-dataset.ts with this package's input.json (300x300 grey,
no resampling). Nothing here decodes or resizes JPEGs itself.

    cd /work/main
    npx tsx models/tools/prepare-dataset.ts --spec models/casting-cls/1/input.json \
        --src /work/shared/datasets/casting/train --out var/prep/casting
    npx tsx models/tools/prepare-dataset.ts --spec models/casting-cls/1/input.json \
        --src fixtures/casting --out var/prep/casting-fixtures
    /usr/bin/python3 models/casting-cls/1/train.py

Writes into this folder: model.onnx, model.json, parity.json, metrics.json.

Split (deterministic, by file name only):
  bucket = int(sha256(file stem)[:8], 16) % 100
  test  = the fixture files (fixtures/casting) + bucket in [10, 20)
  val   = bucket in [0, 10)  (minus fixtures)
  train = everything else
  held-out = val + test. The checkpoint (epoch) and the default threshold are
  chosen on val only; the headline metrics are on test.

Labels: 0 = "ok" (ok_front), 1 = "defect" (def_front). Output: raw logits.
Defect score = softmax(logits)[1] = 1 - p(ok); reject when score >= threshold.
Needs Debian's /usr/bin/python3 with torch 1.13, numpy and PIL (no torchvision, no onnx package);
CPU only, 2 threads, about 10-15 minutes. No pretrained weights: trained from scratch.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = Path(__file__).resolve().parent          # models/casting-cls/1
ROOT = HERE.parents[2]                           # repo root
LABELS = ["ok", "defect"]
CLASS_DIRS = {"ok_front": 0, "def_front": 1}
SEED = 20240611
ESCAPE_TARGET = 0.01


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prep", default=str(ROOT / "var/prep/casting"), help="prepared PNGs of the data set")
    p.add_argument("--fixtures-prep", default=str(ROOT / "var/prep/casting-fixtures"), help="prepared PNGs of fixtures/casting")
    p.add_argument("--fixtures", default=str(ROOT / "fixtures/casting"), help="original fixture JPEGs (for names and parity paths)")
    p.add_argument("--out", default=str(HERE), help="package folder to write")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--version", default="1", help="the package version written into model.json (a new recipe is a new version folder)")
    return p.parse_args()


# ----------------------------------------------------------------------------- data

def bucket_of(stem: str) -> int:
    return int(hashlib.sha256(stem.encode("utf-8")).hexdigest()[:8], 16) % 100


def load_png(path: Path, spec: dict) -> np.ndarray:
    im = Image.open(path)
    if im.mode != "L":
        raise SystemExit(f"{path}: expected a grey (L) PNG from prepare-dataset, got {im.mode}")
    a = np.asarray(im, dtype=np.uint8)
    if a.shape != (spec["height"], spec["width"]):
        raise SystemExit(f"{path}: size {a.shape}, spec says {spec['height']}x{spec['width']}")
    return a


def to_tensor(u8: np.ndarray | torch.Tensor, spec: dict) -> torch.Tensor:
    """uint8 (N, H, W) -> float32 (N, 1, H, W): v * scale, then (x - mean) / std (as the runtime's normaliseTables)."""
    x = torch.as_tensor(np.array(u8, copy=True) if isinstance(u8, np.ndarray) else u8).float().unsqueeze(1) * float(spec["scale"])
    return (x - float(spec["mean"][0])) / float(spec["std"][0])


def load_split(prep: Path, fixture_stems: set[str], spec: dict):
    sets = {"train": ([], [], []), "val": ([], [], []), "test": ([], [], [])}
    for cls, label in sorted(CLASS_DIRS.items()):
        for f in sorted((prep / cls).glob("*.png")):
            stem = f.stem
            b = bucket_of(stem)
            part = "test" if stem in fixture_stems else ("val" if b < 10 else "test" if b < 20 else "train")
            imgs, ys, names = sets[part]
            imgs.append(load_png(f, spec))
            ys.append(label)
            names.append(f"{cls}/{stem}")
    out = {}
    for part, (imgs, ys, names) in sets.items():
        out[part] = (np.stack(imgs), np.asarray(ys, dtype=np.int64), names)
    return out


# ----------------------------------------------------------------------------- model

def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CastingNet(nn.Module):
    """300x300x1 -> 150 -> 75 -> 38 -> 19 -> 10 (stride-2 convs) -> 3x3 conv -> [global avg, global max] -> 2 logits.

    The global max pool lets one small local defect (a blowhole) decide, where an average alone dilutes it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *block(1, 16, 2), *block(16, 32, 2), *block(32, 64, 2), *block(64, 96, 2), *block(96, 128, 2), *block(128, 128, 1),
        )
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.max = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(256, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(torch.cat([self.avg(f), self.max(f)], dim=1))


# ----------------------------------------------------------------------------- training

def augment(u8: torch.Tensor, gen: torch.Generator, spec: dict) -> torch.Tensor:
    """u8 (B, H, W) uint8 -> normalised float (B, 1, H, W); random dihedral transform + small brightness/contrast jitter."""
    out = []
    for i in range(u8.shape[0]):
        im = u8[i]
        k = int(torch.randint(0, 4, (1,), generator=gen))
        if k:
            im = torch.rot90(im, k, (0, 1))
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            im = torch.flip(im, (1,))
        out.append(im)
    x = torch.stack(out).float() * float(spec["scale"])                 # 0..1
    b = x.shape[0]
    gain = 1.0 + (torch.rand(b, 1, 1, generator=gen) - 0.5) * 0.16     # x0.92..1.08
    bias = (torch.rand(b, 1, 1, generator=gen) - 0.5) * 0.08           # +-0.04
    x = (x * gain + bias).clamp(0.0, 1.0)
    return ((x - float(spec["mean"][0])) / float(spec["std"][0])).unsqueeze(1)


@torch.no_grad()
def predict(model: nn.Module, u8: np.ndarray, spec: dict, batch: int = 64) -> np.ndarray:
    model.eval()
    logits = [model(to_tensor(u8[i:i + batch], spec)) for i in range(0, len(u8), batch)]
    return torch.cat(logits).numpy().astype(np.float64)


def defect_scores(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return 1.0 - p[:, 0]


def rates(scores: np.ndarray, y: np.ndarray, t: float) -> dict:
    reject = scores >= t
    tp = int(((y == 1) & reject).sum())    # defect rejected
    fn = int(((y == 1) & ~reject).sum())   # escape
    fp = int(((y == 0) & reject).sum())    # overkill (false reject)
    tn = int(((y == 0) & ~reject).sum())
    n = len(y)
    return {
        "threshold": t, "images": n, "ok": int((y == 0).sum()), "defect": int((y == 1).sum()),
        "accuracy": (tp + tn) / n,
        "escapeRate": fn / max(1, tp + fn), "overkillRate": fp / max(1, fp + tn),
        "escapes": fn, "falseRejects": fp,
        "confusion": {"rows": "true ok, true defect", "cols": "pred ok, pred defect", "matrix": [[tn, fp], [fn, tp]]},
    }


def pick_threshold(scores: np.ndarray, y: np.ndarray, escape_target: float) -> tuple[float, dict]:
    """Default threshold from (scores, y): escape rate <= target, then the fewest false rejects, then the fewest escapes.

    Thresholds that lie between two neighbouring scores give the same counts, so the candidates are the
    defect scores themselves (t = the score of the lowest defect still caught). Among the admissible ones
    (at most k = floor(target * n_defect) defects below t) take the fewest false rejects, then the fewest
    escapes. Any t in (highest ok score below that defect score, that score] gives those counts; take the
    midpoint in logit space so both sides keep a margin, rounded down to 4 decimals.
    """
    d = np.sort(scores[y == 1])
    ok = scores[y == 0]
    k = int(math.floor(escape_target * len(d) + 1e-9))
    best = None
    for i in range(min(k, len(d) - 1) + 1):        # i defects escape (ties aside)
        upper = float(d[i])
        fr = int((ok >= upper).sum())
        if best is None or fr < best[0]:           # strictly fewer false rejects needed to allow more escapes
            best = (fr, i, upper)
    fr, escapes, upper = best
    below = ok[ok < upper]
    lower = float(below.max()) if below.size else 0.0
    logit = lambda p: math.log(max(p, 1e-12) / max(1 - p, 1e-12))
    mid = 1 / (1 + math.exp(-(logit(max(lower, 1e-9)) + logit(upper)) / 2))
    t = math.floor(mid * 1e4) / 1e4
    t = min(max(t, 1e-4), upper)
    return t, {"allowedEscapes": k, "escapesAtChoice": escapes, "falseRejectsAtChoice": fr,
               "lowestCaughtDefectScore": upper, "highestOkScoreBelow": lower}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    spec = json.loads((HERE / "input.json").read_text())
    assert spec["channels"] == 1 and spec["color"] == "GRAY" and spec["layout"] == "NCHW"

    fixtures = Path(args.fixtures)
    fixture_files = sorted(p for p in fixtures.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    fixture_stems = {p.stem for p in fixture_files}
    t0 = time.time()
    data = load_split(Path(args.prep), fixture_stems, spec)
    counts = {part: {LABELS[c]: int((y == c).sum()) for c in range(2)} for part, (_, y, _) in data.items()}
    fixtures_in = {part: sum(1 for n in names if n.split("/")[1] in fixture_stems) for part, (_, _, names) in data.items()}
    assert fixtures_in["train"] == 0 and fixtures_in["val"] == 0 and fixtures_in["test"] == len(fixture_stems), fixtures_in
    print(f"loaded in {time.time() - t0:.1f}s; split {counts}; fixtures per split {fixtures_in}", flush=True)

    xtr, ytr, _ = data["train"]
    xval, yval, _ = data["val"]
    xte, yte, _ = data["test"]
    xtr_t = torch.from_numpy(xtr)
    ytr_t = torch.from_numpy(ytr)

    model = CastingNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)
    steps_per_epoch = len(xtr) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.15)
    gen = torch.Generator().manual_seed(SEED)

    history = []
    best = None
    t_train = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        te = time.time()
        for s in range(0, len(perm) - args.batch + 1, args.batch):  # full batches only (drop the remainder)
            idx = perm[s:s + args.batch]
            x = augment(xtr_t[idx], gen, spec)
            y = ytr_t[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            total += len(idx)
        lv = predict(model, xval, spec)
        val_loss = float(F.cross_entropy(torch.from_numpy(lv), torch.from_numpy(yval)))
        val_acc = float((lv.argmax(1) == yval).mean())
        row = {"epoch": epoch, "trainLoss": loss_sum / total, "trainAccuracy": correct / total, "valLoss": val_loss, "valAccuracy": val_acc,
               "lr": sched.get_last_lr()[0], "seconds": round(time.time() - te, 1)}
        history.append(row)
        print(json.dumps(row), flush=True)
        if best is None or val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
    train_seconds = time.time() - t_train
    model.load_state_dict(best[2])
    model.eval()
    print(f"training {train_seconds:.0f}s; keeping epoch {best[1]} (lowest val loss {best[0]:.4f})", flush=True)

    # ------------------------------------------------------------------ threshold on val, report on test
    s_val = defect_scores(predict(model, xval, spec))
    s_te = defect_scores(predict(model, xte, spec))
    threshold, why = pick_threshold(s_val, yval, ESCAPE_TARGET)
    s_held = np.concatenate([s_val, s_te])
    y_held = np.concatenate([yval, yte])
    res = {
        "test": {"atThreshold": rates(s_te, yte, threshold), "at05": rates(s_te, yte, 0.5)},
        "val": {"atThreshold": rates(s_val, yval, threshold), "at05": rates(s_val, yval, 0.5)},
        "heldOut": {"atThreshold": rates(s_held, y_held, threshold), "at05": rates(s_held, y_held, 0.5)},
    }
    for part, r in res.items():
        print(part, json.dumps({k: {m: v[m] for m in ("accuracy", "escapeRate", "overkillRate", "escapes", "falseRejects", "images")} for k, v in r.items()}), flush=True)
    print(f"threshold {threshold} ({why})", flush=True)

    # ------------------------------------------------------------------ ONNX export (opset 17, dynamic batch)
    onnx_path = out / "model.onnx"
    dummy = to_tensor(xte[:1], spec)
    torch.onnx.export(model, dummy, str(onnx_path), opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True, export_params=True)
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    print(f"exported {onnx_path} ({onnx_path.stat().st_size} bytes, sha256 {sha})", flush=True)

    # ------------------------------------------------------------------ parity reference on the fixtures
    fprep = Path(args.fixtures_prep)
    cases = []
    for f in fixture_files:
        rel_cls = f.parent.name
        u8 = load_png(fprep / rel_cls / f"{f.stem}.png", spec)
        with torch.no_grad():
            lg = model(to_tensor(u8[None], spec))[0].tolist()
        cases.append({"file": f.relative_to(ROOT).as_posix(), "logits": lg})
    (out / "parity.json").write_text(json.dumps({"tolerance": 1e-4, "input": "input", "output": "logits", "cases": cases}, indent=2) + "\n")

    # ------------------------------------------------------------------ metrics.json and model.json
    today = dt.date.today().isoformat()
    test_t, test_5 = res["test"]["atThreshold"], res["test"]["at05"]
    metrics = {
        "date": today,
        "torch": torch.__version__,
        "seed": SEED,
        "threads": args.threads,
        "trainSeconds": round(train_seconds, 1),
        "epochs": args.epochs,
        "keptEpoch": best[1],
        "params": sum(p.numel() for p in model.parameters()),
        "split": {
            "rule": "bucket = int(sha256(file stem)[:8], 16) % 100; fixtures -> test; bucket < 10 -> val; bucket < 20 -> test; else train",
            "counts": counts,
            "fixturesPerSplit": fixtures_in,
            "heldOut": {"val": data["val"][2], "test": data["test"][2]},
        },
        "threshold": {"value": threshold, "chosenOn": "val", "escapeTarget": ESCAPE_TARGET, **why},
        "results": res,
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")

    manifest = {
        "name": "casting-cls",
        "version": args.version,
        "task": "classification",
        "description": "Pass/fail classifier for top-view photos of cast pump impellers (300x300 grey). Small CNN trained from scratch; defect score = 1 - p(ok).",
        "file": "model.onnx",
        "sha256": sha,
        "input": spec,
        "decode": {"kind": "classification", "output": "logits", "activation": "softmax", "goodLabels": ["ok"]},
        "labels": LABELS,
        "thresholds": {"default": threshold, "perLabel": {}},
        "provenance": {
            "data": (f"Kaggle casting product images (R. Dabhi), 300x300 top views, half sample in shared/datasets/casting/train "
                     f"({counts['train']['ok'] + counts['val']['ok'] + counts['test']['ok']} ok, "
                     f"{counts['train']['defect'] + counts['val']['defect'] + counts['test']['defect']} defect). "
                     f"Split by sha256 of the file name: train {counts['train']['ok']} ok + {counts['train']['defect']} defect; "
                     f"val {counts['val']['ok']} + {counts['val']['defect']} (epoch and threshold choice); "
                     f"test {counts['test']['ok']} + {counts['test']['defect']} (incl. the 20 fixtures/casting images; metrics below). "
                     "Preprocessed by models/tools/prepare-dataset.ts with input.json."),
            "script": "train.py" if args.version == "1" else f"../1/train.py --epochs {args.epochs} --version {args.version}",
            "date": today,
            "metrics": {
                "heldOutImages": test_t["images"],
                "accuracy": round(test_t["accuracy"], 6),
                "escapeRate": round(test_t["escapeRate"], 6),
                "overkillRate": round(test_t["overkillRate"], 6),
                "threshold": threshold,
                "escapes": test_t["escapes"],
                "falseRejects": test_t["falseRejects"],
                "accuracyAt05": round(test_5["accuracy"], 6),
                "escapeRateAt05": round(test_5["escapeRate"], 6),
                "overkillRateAt05": round(test_5["overkillRate"], 6),
                "valImages": res["val"]["atThreshold"]["images"],
                "trainImages": int(len(ytr)),
                "evaluatedOn": "test part of the held-out split; threshold chosen on the val part",
            },
            "license": "Model: trained by the linegate project. Data: Kaggle 'casting product image data for quality inspection' by Ravirajsinh Dabhi, believed CC BY-NC-ND 4.0 (attribution, non-commercial); use for testing and research.",
            "source": "https://www.kaggle.com/datasets/ravirajsinh45/real-life-industrial-dataset-of-casting-product (via GitHub maomao7784/Casting-Product-Quality-Inspection)",
        },
    }
    (out / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"done in {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
