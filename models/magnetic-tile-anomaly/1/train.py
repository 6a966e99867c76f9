#!/usr/bin/python3
"""Trains models/magnetic-tile-anomaly/1 on good magnetic tiles only and exports it
with anomalib's ONNX output contract (pred_score, pred_label, anomaly_map, pred_mask).

Method (no pretrained weights can be had here, so everything is learnt from the
good tiles): a small U-Net learns to segment *synthetic* anomalies pasted onto
good tiles (dark holes, bright spots, foreign texture, thin cracks, chipped
edges), in the spirit of DRAEM. It never sees a real defect; real defects are
only used to pick the threshold (validation) and to measure it (test).

Data: the PNGs written by models/tools/prepare-dataset.ts with input.json, i.e.
exactly the pixels the station feeds the model:

  npx tsx models/tools/prepare-dataset.ts --spec models/magnetic-tile-anomaly/1/input.json \
      --src ../shared/datasets/magnetic-tile --out var/prep/mt --masks
  npx tsx models/tools/prepare-dataset.ts --spec models/magnetic-tile-anomaly/1/input.json \
      --src fixtures/magnetic-tile --out var/prep/mt-fixtures --masks
  /usr/bin/python3 models/magnetic-tile-anomaly/1/train.py
"""
import argparse
import hashlib
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DEFECTS = ["MT_Blowhole", "MT_Break", "MT_Crack", "MT_Fray", "MT_Uneven"]


def args():
    p = argparse.ArgumentParser()
    p.add_argument("--prep", default=str(ROOT / "var/prep/mt"))
    p.add_argument("--fixtures-prep", default=str(ROOT / "var/prep/mt-fixtures"))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    return p.parse_args()


def bucket(stem):
    return int(hashlib.sha256(stem.encode()).hexdigest()[:8], 16) % 100


def load(path):
    return np.asarray(Image.open(path), dtype=np.uint8)


def split(prep, spec):
    """Good: 70% train, 15% val, 15% test. Defects: 40% val, 60% test. Never train on a defect."""
    parts = {k: {"img": [], "mask": [], "label": [], "cls": [], "name": []} for k in ("train", "val", "test")}
    for cls in ["MT_Free"] + DEFECTS:
        for f in sorted((prep / cls).glob("*.png")):
            if f.name.endswith(".mask.png"):
                continue
            b = bucket(f.stem)
            if cls == "MT_Free":
                part = "train" if b < 70 else "val" if b < 85 else "test"
            else:
                part = "val" if b < 40 else "test"
            img = load(f)
            assert img.shape == (spec["height"], spec["width"]), f"{f}: {img.shape}"
            mask = load(f.with_name(f.stem + ".mask.png")) >= 128
            d = parts[part]
            d["img"].append(img)
            d["mask"].append(mask)
            d["label"].append(0 if cls == "MT_Free" else 1)
            d["cls"].append(cls)
            d["name"].append(f"{cls}/{f.stem}")
    for d in parts.values():
        d["img"] = np.stack(d["img"])
        d["mask"] = np.stack(d["mask"])
        d["label"] = np.asarray(d["label"])
    return parts


def to_tensor(u8, spec):
    x = torch.from_numpy(np.ascontiguousarray(u8)).float().unsqueeze(1) * float(spec["scale"])
    return (x - float(spec["mean"][0])) / float(spec["std"][0])


# ---------------------------------------------------------------- synthetic anomalies

def blob_mask(rng, h, w):
    """Smooth random blobs: low-resolution noise upsampled and thresholded high."""
    res = rng.choice([4, 8, 16])
    noise = torch.from_numpy(rng.random((1, 1, res, res)).astype(np.float32))
    up = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)[0, 0].numpy()
    return up > np.quantile(up, rng.uniform(0.93, 0.995))


def crack_mask(rng, h, w):
    m = np.zeros((h, w), bool)
    y, x = rng.uniform(0, h), rng.uniform(0, w)
    angle = rng.uniform(0, 2 * np.pi)
    width = rng.integers(1, 4)
    for _ in range(rng.integers(30, 160)):
        angle += rng.normal(0, 0.35)
        y, x = y + np.sin(angle) * 1.5, x + np.cos(angle) * 1.5
        yi, xi = int(y), int(x)
        if not (0 <= yi < h and 0 <= xi < w):
            break
        m[max(0, yi - width // 2): yi + width // 2 + 1, max(0, xi - width // 2): xi + width // 2 + 1] = True
    return m


def edge_chip_mask(rng, h, w):
    """A chipped corner or edge: a half-plane near the border."""
    yy, xx = np.mgrid[0:h, 0:w]
    side = rng.integers(4)
    depth = rng.uniform(6, 30)
    centre = rng.uniform(0.1, 0.9)
    radius = rng.uniform(15, 60)
    if side == 0:
        d, t = yy, xx / w
    elif side == 1:
        d, t = h - 1 - yy, xx / w
    elif side == 2:
        d, t = xx, yy / h
    else:
        d, t = w - 1 - xx, yy / h
    return (d < depth * np.clip(1 - ((t - centre) * w / radius) ** 2, 0, 1))


def synthesise(rng, img, others):
    """One good tile with a synthetic anomaly, and its mask (or unchanged, 40% of the time)."""
    h, w = img.shape
    out = img.astype(np.float32)
    if rng.random() < 0.4:
        return out, np.zeros((h, w), np.float32)
    kind = rng.choice(["dark", "bright", "texture", "crack", "chip"], p=[0.3, 0.15, 0.2, 0.2, 0.15])
    mask = crack_mask(rng, h, w) if kind == "crack" else edge_chip_mask(rng, h, w) if kind == "chip" else blob_mask(rng, h, w)
    if mask.sum() < 4:
        return out, np.zeros((h, w), np.float32)
    if kind in ("dark", "crack", "chip"):
        out[mask] *= rng.uniform(0.05, 0.6)
    elif kind == "bright":
        out[mask] = np.minimum(255, out[mask] + rng.uniform(40, 120))
    else:
        src = others[rng.integers(len(others))].astype(np.float32)
        src = np.rot90(src, rng.integers(4)).copy()
        out[mask] = src[mask] * rng.uniform(0.5, 1.5)
    return np.clip(out, 0, 255), mask.astype(np.float32)


# ---------------------------------------------------------------- model

def block(i, o):
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A U-Net at half the input resolution (a stride-2 stem), its map upsampled back:
    a quarter of the cost of a full-resolution one, which 2 CPU cores need."""

    def __init__(self, c=(12, 24, 32, 48)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c[0], 3, stride=2, padding=1), nn.BatchNorm2d(c[0]), nn.ReLU(inplace=True))
        self.e1, self.e2, self.e3, self.e4 = block(c[0], c[0]), block(c[0], c[1]), block(c[1], c[2]), block(c[2], c[3])
        self.d3, self.d2, self.d1 = block(c[3] + c[2], c[2]), block(c[2] + c[1], c[1]), block(c[1] + c[0], c[0])
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x):
        size = x.shape[-2:]
        e1 = self.e1(self.stem(x))
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        e4 = self.e4(F.max_pool2d(e3, 2))
        up = lambda t, ref: F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)
        d3 = self.d3(torch.cat([up(e4, e3), e3], 1))
        d2 = self.d2(torch.cat([up(d3, e2), e2], 1))
        d1 = self.d1(torch.cat([up(d2, e1), e1], 1))
        return F.interpolate(self.head(d1), size=size, mode="bilinear", align_corners=False)


def gaussian_kernel(sigma=2.0, size=9):
    r = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


class Raw(nn.Module):
    """Unnormalised scores: smoothed anomaly probability map, and its maximum as the image score."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("kernel", gaussian_kernel())
        self.pad = int(gaussian_kernel().shape[-1]) // 2

    def forward(self, x):
        prob = torch.sigmoid(self.net(x))
        amap = F.conv2d(prob, self.kernel, padding=self.pad)
        score = torch.amax(amap, dim=(1, 2, 3))
        return score, amap


class Exported(nn.Module):
    """anomalib's contract: scores min-max normalised around their thresholds, cut at 0.5."""

    def __init__(self, raw, t_img, lo_img, hi_img, t_pix, lo_pix, hi_pix):
        super().__init__()
        self.raw = raw
        for k, v in dict(t_img=t_img, lo_img=lo_img, hi_img=hi_img, t_pix=t_pix, lo_pix=lo_pix, hi_pix=hi_pix).items():
            self.register_buffer(k, torch.tensor(float(v)))

    def forward(self, x):
        score, amap = self.raw(x)
        pred_score = torch.clamp((score - self.t_img) / (self.hi_img - self.lo_img) + 0.5, 0.0, 1.0)
        anomaly_map = torch.clamp((amap - self.t_pix) / (self.hi_pix - self.lo_pix) + 0.5, 0.0, 1.0)
        return pred_score, pred_score >= 0.5, anomaly_map, anomaly_map >= 0.5


# ---------------------------------------------------------------- metrics

def auroc(scores, labels):
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks of ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i: j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def best_f1_threshold(scores, labels):
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    best = (-1.0, float(np.median(scores)))
    for t in np.unique(scores):
        pred = scores >= t
        tp = (pred & labels).sum()
        fp = (pred & ~labels).sum()
        fn = (~pred & labels).sum()
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        if f1 > best[0]:
            best = (f1, float(t))
    return best[1], best[0]


@torch.no_grad()
def raw_scores(raw, imgs, spec, batch=16):
    raw.eval()
    scores, maps = [], []
    for i in range(0, len(imgs), batch):
        s, m = raw(to_tensor(imgs[i: i + batch], spec))
        scores.append(s.numpy())
        maps.append(m[:, 0].numpy())
    return np.concatenate(scores), np.concatenate(maps)


def main():
    a = args()
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    torch.set_num_threads(a.threads)
    spec = json.loads((HERE / "input.json").read_text())
    data = split(Path(a.prep), spec)
    counts = {k: {c: int(sum(1 for x in d["cls"] if x == c)) for c in ["MT_Free"] + DEFECTS} for k, d in data.items()}
    print(json.dumps({"counts": counts}), flush=True)

    net = UNet()
    raw = Raw(net)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=a.epochs * ((len(data["train"]["img"]) + a.batch - 1) // a.batch))
    train = data["train"]["img"]
    history = []
    t0 = time.time()
    for epoch in range(a.epochs):
        net.train()
        perm = rng.permutation(len(train))
        total = 0.0
        for i in range(0, len(perm), a.batch):
            xs, ms = [], []
            for j in perm[i: i + a.batch]:
                img = train[j]
                if rng.random() < 0.5:
                    img = img[:, ::-1]
                if rng.random() < 0.5:
                    img = img[::-1, :]
                x, m = synthesise(rng, img, train)
                xs.append(x)
                ms.append(m)
            x = to_tensor(np.stack(xs).astype(np.uint8), spec)
            m = torch.from_numpy(np.stack(ms))[:, None]
            logits = net(x)
            # Focal-weighted BCE: anomalous pixels are rare.
            bce = F.binary_cross_entropy_with_logits(logits, m, reduction="none")
            p = torch.sigmoid(logits)
            focal = ((1 - torch.where(m > 0, p, 1 - p)) ** 2 * bce).mean()
            dice = 1 - (2 * (p * m).sum() + 1) / (p.sum() + m.sum() + 1)
            loss = focal * 10 + dice
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(xs)
        vs, _ = raw_scores(raw, data["val"]["img"], spec)
        entry = {"epoch": epoch + 1, "loss": total / len(perm), "valImageAUROC": auroc(vs, data["val"]["label"]), "seconds": round(time.time() - t0, 1)}
        history.append(entry)
        print(json.dumps(entry), flush=True)

    # Thresholds and normalisation from validation only.
    vs, vm = raw_scores(raw, data["val"]["img"], spec)
    t_img, f1_img = best_f1_threshold(vs, data["val"]["label"])
    zero_escape = float(vs[data["val"]["label"] == 1].min())
    pix = vm.reshape(-1)
    pix_true = data["val"]["mask"].reshape(-1)
    sample = np.random.default_rng(1).choice(len(pix), size=min(len(pix), 400_000), replace=False)
    t_pix, f1_pix = best_f1_threshold(np.round(pix[sample], 4), pix_true[sample])
    lo_img, hi_img = float(vs.min()), float(vs.max())
    lo_pix, hi_pix = float(vm.min()), float(vm.max())
    exported = Exported(raw, t_img, lo_img, hi_img, t_pix, lo_pix, hi_pix).eval()

    def report(part):
        d = data[part]
        s, m = raw_scores(raw, d["img"], spec)
        norm = np.clip((s - t_img) / (hi_img - lo_img) + 0.5, 0, 1)
        pred = norm >= 0.5
        y = d["label"] == 1
        per_class = {c: float(pred[np.array(d["cls"]) == c].mean()) for c in DEFECTS}
        return {
            "images": int(len(y)),
            "imageAUROC": auroc(s, y),
            "pixelAUROC": auroc(m.reshape(-1), d["mask"].reshape(-1)),
            "accuracy": float((pred == y).mean()),
            "recall": float(pred[y].mean()),
            "escapeRate": float((~pred[y]).mean()),
            "overkillRate": float(pred[~y].mean()),
            "recallPerClass": per_class,
        }

    val_report, test_report = report("val"), report("test")
    print(json.dumps({"val": val_report, "test": test_report}), flush=True)

    onnx_path = HERE / "model.onnx"
    dummy = torch.zeros(1, 1, spec["height"], spec["width"])
    torch.onnx.export(
        exported, dummy, str(onnx_path), opset_version=17, input_names=["input"],
        output_names=["pred_score", "pred_label", "anomaly_map", "pred_mask"],
        dynamic_axes={n: {0: "N"} for n in ["input", "pred_score", "pred_label", "anomaly_map", "pred_mask"]},
    )
    sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()

    # Parity references: the PyTorch export wrapper on the fixture images, as the runtime prepares them.
    cases = []
    fx = Path(a.fixtures_prep)
    with torch.no_grad():
        for f in sorted(fx.rglob("*.png")):
            if f.name.endswith(".mask.png"):
                continue
            ps, _, amap, _ = exported(to_tensor(load(f)[None], spec))
            flat = amap.reshape(-1).numpy().astype(np.float64)
            rel = f.relative_to(fx).with_suffix(".jpg")
            cases.append({
                "file": f"fixtures/magnetic-tile/{rel.as_posix()}",
                "pred_score": [float(ps[0])],
                "anomaly_map_sum": float(flat.sum()),
                "anomaly_map_max": float(flat.max()),
                "anomaly_map_sample": [float(v) for v in flat[:64]],
            })
    (HERE / "parity.json").write_text(json.dumps({"tolerance": 1e-4, "input": "input", "cases": cases}, indent=1) + "\n")

    metrics = {
        "counts": counts,
        "thresholds": {"imageRaw": t_img, "imageF1Val": f1_img, "pixelRaw": t_pix, "pixelF1Val": f1_pix, "imageMinMax": [lo_img, hi_img], "pixelMinMax": [lo_pix, hi_pix],
                       "zeroEscapeRawVal": zero_escape, "zeroEscapeNormalised": float(np.clip((zero_escape - t_img) / (hi_img - lo_img) + 0.5, 0, 1))},
        "validation": val_report,
        "test": test_report,
        "history": history,
        "trainingSeconds": round(time.time() - t0, 1),
    }
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    t = test_report
    manifest = {
        "name": "magnetic-tile-anomaly",
        "version": "1",
        "task": "anomaly",
        "description": "Anomaly detector for magnetic tile surfaces, trained on good tiles only (a U-Net that learnt to segment synthetic anomalies); anomalib ONNX output contract, cut at 0.5.",
        "file": "model.onnx",
        "sha256": sha,
        "input": spec,
        "decode": {"kind": "anomaly", "score": "pred_score", "map": "anomaly_map", "label": "pred_label", "mask": "pred_mask", "threshold": 0.5, "minAreaPx": 6},
        "labels": ["anomaly"],
        "thresholds": {"default": 0.5, "perLabel": {}},
        "provenance": {
            "data": f"Magnetic tile defect data set (shared/datasets/magnetic-tile), prepared by models/tools/prepare-dataset.ts with input.json. Split by sha256 of the file name: MT_Free {counts['train']['MT_Free']} train / {counts['val']['MT_Free']} validation / {counts['test']['MT_Free']} test; defects only in validation ({sum(counts['val'][c] for c in DEFECTS)}) and test ({sum(counts['test'][c] for c in DEFECTS)}). Thresholds from validation (F1); metrics on test.",
            "script": "train.py",
            "date": date.today().isoformat(),
            "metrics": {
                "testImages": t["images"], "imageAUROC": round(t["imageAUROC"], 4), "pixelAUROC": round(t["pixelAUROC"], 4),
                "accuracy": round(t["accuracy"], 4), "recall": round(t["recall"], 4), "escapeRate": round(t["escapeRate"], 4),
                "overkillRate": round(t["overkillRate"], 4), "zeroEscapeThresholdNormalised": round(metrics["thresholds"]["zeroEscapeNormalised"], 4),
                "evaluatedOn": "test split (never used for training or thresholds)",
            },
            "license": "Data: Huang, Qiu, Yuan, 'Surface defect saliency of magnetic tile' (2018), via GitHub abin24/Magnetic-tile-defect-datasets; cite the paper.",
        },
    }
    (HERE / "model.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"sha256": sha, "test": t}), flush=True)


if __name__ == "__main__":
    main()
