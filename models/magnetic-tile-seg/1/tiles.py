#!/usr/bin/python3
"""Trains and judges the U-Net of train.py on tiles of the source image at its own scale (item 9 of the README).

The station cuts each image into 224x224 tiles as core/onnx-model@1 does with `tiling: { overlap: 32 }`; a tile under
224 on a side is letterboxed top-left (pad 0), so a defect keeps its size and shape in pixels whatever the tile's
width. models/tools/prepare-dataset.ts --tiles writes those tiles, their masks and each tile's transform back to
source pixels; nothing here decodes, cuts or resizes a JPEG itself.

    npx tsx models/tools/prepare-dataset.ts --spec models/magnetic-tile-seg/1/tiles-input.json \\
        --src ../shared/datasets/magnetic-tile --out /tmp/mtseg/tiles --masks
    nice -n 19 /usr/bin/python3 models/magnetic-tile-seg/1/tiles.py --prep /tmp/mtseg/tiles --checkpoint t401.pt --seed 401
    /usr/bin/python3 models/magnetic-tile-seg/1/tiles.py --prep /tmp/mtseg/tiles --judge t401.pt t402.pt t403.pt

tiles-input.json is the input spec (model.json's `input`) such a package would carry; its `tiling` makes
prepare-dataset.ts and core/onnx-model@1 cut the same tiles.

Training is train.py's (the same net, loss, augmentation, optimiser and schedule), on tiles: a batch is half tiles
with defect pixels (their image drawn with weight 1/sqrt(images of its class), then one of its defective tiles) and
half tiles of good images. Tiles of defective images without a marked pixel are left out: unmarked, not known good.

The judge emulates the station: per tile the regions of segment-decode (pixels >= 0.5, 8-connected blobs of >= 4
px, peak score), mapped to source pixels through the tile's transform, then the regions of all tiles deduplicated
as plugins/lib/map-regions.ts does (NMS at IoU 0.3, higher score kept). The image score is the top region's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import train as T

NMS_IOU = 0.3             # plugins/lib/map-regions.ts dedupeRegions


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prep", required=True, help="tiles written by prepare-dataset.ts --tiles")
    p.add_argument("--spec", default=str(T.HERE / "tiles-input.json"), help="the input spec the tiles were made with")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=401)
    p.add_argument("--checkpoint", help="where training keeps its best weights (and <checkpoint>.json its history)")
    p.add_argument("--judge", nargs="*", default=None, help="skip training: judge the mean of these checkpoints' logits")
    p.add_argument("--parts", nargs="*", default=["val"], help="with --judge: the split parts to report")
    p.add_argument("--dump", default=None, help="with --judge: write per-image scores and rules as JSON here")
    p.add_argument("--onnx", default=None, help="with --judge: also export the mean of the members as one ONNX graph here")
    return p.parse_args()


# ----------------------------------------------------------------------------- data

def split_of(prep: Path) -> dict[str, list[str]]:
    """train.py's split rule over the stems that have a tiles index; checked against the committed lists."""
    split = {"train": [], "val": [], "test": []}
    for cls in T.CLASSES:
        stems = sorted((f.name[: -len(".tiles.json")] for f in (prep / cls).glob("*.tiles.json")), key=T.sha_key)
        n_test = n_val = int(round(0.15 * len(stems)))
        split["test"] += [f"{cls}/{s}" for s in stems[:n_test]]
        split["val"] += [f"{cls}/{s}" for s in stems[n_test:n_test + n_val]]
        split["train"] += [f"{cls}/{s}" for s in stems[n_test + n_val:]]
    split = {k: sorted(v) for k, v in split.items()}
    for part, names in split.items():
        committed = (T.HERE / "split" / f"{part}.txt").read_text().split()
        if committed != names:
            raise SystemExit(f"split {part} differs from split/{part}.txt: the tiles must come from the same data set")
    return split


def load_tiles(prep: Path, names: list[str], spec: dict) -> dict:
    """Every tile of every image: pixels, masks, the image each belongs to, transforms; and per image its class and mask."""
    u8, masks, owner, transforms, cls, source = [], [], [], [], [], []
    for i, n in enumerate(names):
        index = json.loads((prep / f"{n}.tiles.json").read_text())
        folder = (prep / n).parent
        for t in index["tiles"]:
            stem = t["file"][: -len(".png")]
            u8.append(T.load_png(folder / t["file"], spec))
            masks.append(T.load_png(folder / f"{stem}.mask.png", spec) >= 128)
            owner.append(i)
            transforms.append(t["transform"])
        cls.append(n.split("/")[0])
        source.append((index["source"]["width"], index["source"]["height"]))
    return {"names": names, "u8": np.stack(u8), "masks": np.stack(masks), "owner": np.asarray(owner), "transforms": transforms,
            "cls": np.asarray(cls), "source": source}


# ----------------------------------------------------------------------------- the station, emulated

def to_source(t: dict, x: float, axis: str) -> float:
    """runtime/model-output.ts toSourceX/Y: src = origin + (input - pad) / scale."""
    return t[f"origin{axis}"] + (x - t[f"pad{axis}"]) / t[f"scale{axis}"]


def tile_regions(prob: np.ndarray, t: dict, mm_per_px: float) -> list[dict]:
    """segment-decode's regions of one tile, in source pixels (runtime/model-output.ts boxToSource, areaToSource)."""
    lab, n = T.components(prob >= T.PIXEL_THRESHOLD)
    if n == 0:
        return []
    flat = lab.ravel()
    on = flat > 0
    area = np.bincount(flat[on], minlength=n + 1)
    peak = np.zeros(n + 1)
    np.maximum.at(peak, flat[on], prob.ravel()[on])
    ys, xs = np.divmod(np.flatnonzero(on), prob.shape[1])
    ids = flat[on]
    x0 = np.full(n + 1, 1 << 30); x1 = np.full(n + 1, -1); y0 = np.full(n + 1, 1 << 30); y1 = np.full(n + 1, -1)
    np.minimum.at(x0, ids, xs); np.maximum.at(x1, ids, xs); np.minimum.at(y0, ids, ys); np.maximum.at(y1, ids, ys)
    r = t["region"]
    clip = lambda v, lo, size: max(lo, min(lo + size, v))
    out = []
    for k in range(1, n + 1):
        if area[k] < T.MIN_AREA_PX:
            continue
        bx1 = clip(to_source(t, x0[k], "X"), r["x"], r["width"]); bx2 = clip(to_source(t, x1[k] + 1, "X"), r["x"], r["width"])
        by1 = clip(to_source(t, y0[k], "Y"), r["y"], r["height"]); by2 = clip(to_source(t, y1[k] + 1, "Y"), r["y"], r["height"])
        if bx2 - bx1 <= 0 or by2 - by1 <= 0:
            continue          # wholly in the letterbox padding
        src = float(area[k]) / (t["scaleX"] * t["scaleY"])
        out.append({"score": float(np.float32(peak[k])), "areaPx": int(area[k]), "areaSrc": src, "areaMm2": src * mm_per_px * mm_per_px,
                    "box": (bx1, by1, bx2, by2)})
    return out


def iou(a: tuple, b: tuple) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def dedupe(regions: list[dict], tiles: int) -> list[dict]:
    """plugins/lib/map-regions.ts dedupeRegions: one tile keeps all; else greedy NMS by score (a stable sort)."""
    if tiles <= 1:
        return regions
    kept: list[dict] = []
    for r in sorted(regions, key=lambda r: -r["score"]):
        if all(iou(k["box"], r["box"]) <= NMS_IOU for k in kept):
            kept.append(r)
    return kept


def image_regions(probs: np.ndarray, data: dict) -> list[list[dict]]:
    per_image: list[list[dict]] = [[] for _ in data["names"]]
    counts = np.bincount(data["owner"], minlength=len(data["names"]))
    for p, i, t in zip(probs, data["owner"], data["transforms"]):
        per_image[i] += tile_regions(p, t, T.MM_PER_PIXEL)
    return [dedupe(rs, int(c)) for rs, c in zip(per_image, counts)]


@torch.no_grad()
def mean_logits(models: list[torch.nn.Module], u8: np.ndarray, spec: dict, batch: int = 32) -> torch.Tensor:
    """The mean of the members' logits (the package's graph), (N, H, W) float32."""
    out = []
    for m in models:
        m.eval()
    for i in range(0, len(u8), batch):
        x = T.to_tensor(u8[i:i + batch], spec)
        out.append(torch.stack([m(x) for m in models]).mean(0)[:, 0])
    return torch.cat(out)


def logits_of(models: list[torch.nn.Module], u8: np.ndarray, spec: dict) -> np.ndarray:
    """Sigmoid probability maps (N, H, W) of every tile."""
    return torch.sigmoid(mean_logits(models, u8, spec)).numpy()


def max_pixel_scores(probs: np.ndarray, data: dict) -> np.ndarray:
    s = np.zeros(len(data["names"]))
    np.maximum.at(s, data["owner"], probs.reshape(len(probs), -1).max(1))
    return s


# ----------------------------------------------------------------------------- training

def train(args: argparse.Namespace, spec: dict, tr: dict, val: dict) -> None:
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    has = tr["masks"].reshape(len(tr["masks"]), -1).any(1)
    good_tiles = np.flatnonzero(tr["cls"][tr["owner"]] == T.GOOD)
    # Defective images with at least one marked tile; each drawn with weight 1/sqrt(images of its class), as train.py.
    by_image: dict[int, np.ndarray] = {}
    for i in np.unique(tr["owner"][has & (tr["cls"][tr["owner"]] != T.GOOD)]):
        by_image[int(i)] = np.flatnonzero((tr["owner"] == i) & has)
    images = np.asarray(sorted(by_image))
    per_cls = {c: int((tr["cls"][images] == c).sum()) for c in T.CLASSES if c != T.GOOD}
    weights = torch.tensor([1.0 / math.sqrt(per_cls[tr["cls"][i]]) for i in images], dtype=torch.float64)
    print(f"train: {len(images)} defective images ({sum(len(v) for v in by_image.values())} marked tiles), {len(good_tiles)} good tiles; {per_cls}", flush=True)
    x_t, m_t = torch.from_numpy(tr["u8"]), torch.from_numpy(tr["masks"])
    yval = (val["cls"] != T.GOOD).astype(np.int64)

    model = T.TileUNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=args.steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    half = args.batch // 2
    best, history, t0 = None, [], time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        te, loss_sum = time.time(), 0.0
        for _ in range(args.steps):
            picks = images[torch.multinomial(weights, half, replacement=True, generator=gen).numpy()]
            di = [int(by_image[int(i)][int(torch.randint(0, len(by_image[int(i)]), (1,), generator=gen))]) for i in picks]
            gi = good_tiles[torch.randint(0, len(good_tiles), (args.batch - half,), generator=gen).numpy()]
            idx = torch.from_numpy(np.concatenate([np.asarray(di), gi]))
            x, y = T.augment(x_t[idx], m_t[idx], gen, spec)
            loss = T.seg_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss)
        pv = logits_of([model], val["u8"], spec)
        val_auc = T.auroc(max_pixel_scores(pv, val), yval)
        val_loss = float(T.seg_loss(torch.logit(torch.from_numpy(pv).clamp(1e-6, 1 - 1e-6))[:, None], torch.from_numpy(val["masks"]).float()[:, None]))
        best = T.end_epoch(history, best, model, args, sched, epoch=epoch, train_loss=loss_sum / args.steps, val_loss=val_loss, val_auc=val_auc,
                           epoch_started=te, training_started=t0)
    print(f"training {time.time() - t0:.0f}s; keeping epoch {best[1]} (val {best[0]})", flush=True)


# ----------------------------------------------------------------------------- judging

def judge(args: argparse.Namespace, spec: dict, parts: dict[str, dict]) -> None:
    models = []
    for ck in args.judge:
        m = T.TileUNet()
        m.load_state_dict(torch.load(ck))
        models.append(m)
    val = parts["val"]
    yval = (val["cls"] != T.GOOD).astype(np.int64)
    val_regions = image_regions(logits_of(models, val["u8"], spec), val)
    min_score, min_mm2, why = T.pick_rule(val_regions, yval, T.ESCAPE_TARGET)
    report = {"members": args.judge, "rule": {"minScore": min_score, "minAreaMm2": min_mm2, **why}}
    for part in args.parts:
        d = parts[part]
        y = (d["cls"] != T.GOOD).astype(np.int64)
        regions = val_regions if part == "val" else image_regions(logits_of(models, d["u8"], spec), d)
        s = T.image_scores(regions)
        rej = T.decide(regions, min_score, min_mm2)
        report[part] = {"imageAUROC": T.auroc(s, y),
                        "aurocPerClass": {c: T.auroc(s[(d["cls"] == c) | (d["cls"] == T.GOOD)], y[(d["cls"] == c) | (d["cls"] == T.GOOD)]) for c in T.CLASSES if c != T.GOOD},
                        "atRule": T.rates(rej, y, d["cls"]), "bestAtOverkill10": T.best_at_overkill(regions, y, 0.10),
                        "zeroEscape": T.zero_escape(regions, y, 0.0),
                        "scores": {n: float(v) for n, v in zip(d["names"], s)}}
        r = report[part]
        print(part, json.dumps({"AUROC": r["imageAUROC"], "escapes": r["atRule"]["escapes"], "falseRejects": r["atRule"]["falseRejects"],
                                "perClass": r["aurocPerClass"], "best10": r["bestAtOverkill10"]}), flush=True)
    print("rule", json.dumps(report["rule"]), flush=True)
    if args.onnx:
        export(models, spec, Path(args.onnx))
    if args.dump:
        Path(args.dump).write_text(json.dumps(report, indent=1) + "\n")


def export(models: list[torch.nn.Module], spec: dict, path: Path) -> str:
    """train.py's graph: the members' mean logits, input `input`, output `logits`, dynamic batch (a batch is the tiles)."""
    net = T.MeanLogits(models) if len(models) > 1 else models[0]
    net.eval()
    dummy = torch.zeros(1, 1, spec["height"], spec["width"])
    torch.onnx.export(net, dummy, str(path), opset_version=17, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True, export_params=True)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"exported {path} ({path.stat().st_size} bytes, sha256 {sha})", flush=True)
    return sha


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    prep = Path(args.prep)
    spec = json.loads(Path(args.spec).read_text())
    assert spec["resize"]["mode"] == "letterbox" and spec["resize"].get("anchor") == "top-left" and spec["channels"] == 1 and "tiling" in spec
    split = split_of(prep)
    t0 = time.time()
    if args.judge is not None:
        parts = {p: load_tiles(prep, split[p], spec) for p in sorted(set(args.parts) | {"val"})}
        print(f"loaded in {time.time() - t0:.1f}s", flush=True)
        judge(args, spec, parts)
        return
    if not args.checkpoint:
        raise SystemExit("--checkpoint is needed to keep what training learns")
    tr, val = load_tiles(prep, split["train"], spec), load_tiles(prep, split["val"], spec)
    print(f"loaded in {time.time() - t0:.1f}s: {len(tr['u8'])} train tiles, {len(val['u8'])} val tiles", flush=True)
    train(args, spec, tr, val)


if __name__ == "__main__":
    sys.exit(main())
