#!/usr/bin/python3
"""Reads the members of a magnetic-tile-seg package back out of its model.onnx, as checkpoints train.py --reuse loads.

Why: the checkpoints of the first three members (v1, v3, v4) lived in a temp folder of a machine that is gone, and
the package's model.onnx is the only copy of their weights. The export fused each BatchNorm into the conv before
it (torch's eval-mode export), so a recovered member keeps the fused conv weight, and its BatchNorm becomes the
identity plus the fused bias: weight 1, running mean 0, running variance 1 - eps, bias = the conv's fused bias.
In eval mode (the only mode --reuse uses) that is the same function; the recovered members are checked against the
package's own parity.json (PyTorch logits of the fixtures at export) before anything is written.

    /usr/bin/python3 models/magnetic-tile-seg/1/recover_members.py --onnx models/magnetic-tile-seg/1/model.onnx \\
        --prep /tmp/mtseg/prep224 --out /tmp/mtseg/recovered

Writes <out>/m<K>.pt (state_dict of TileUNet) and <out>/m<K>.pt.json (the member's seed, command, kept epoch and
history, from the package's metrics.json, so the new metrics keep them). Needs Debian's python3-onnx.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("mtseg_train", HERE / "train.py")
train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train)

# '/members.0/e1/e1.0/Conv_output_0' -> member 0, conv module 'e1.0' (its BatchNorm is 'e1.1')
CONV = re.compile(r"^/members\.(\d+)/(\w+)/\2\.(\d+)/Conv_output_0$")


def recover(model: onnx.ModelProto) -> list[dict[str, torch.Tensor]]:
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    states: dict[int, dict[str, torch.Tensor]] = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        m = CONV.match(node.output[0])
        if m is None:
            continue    # the 1x1 head keeps its own names (members.K.head.*), read below
        k, seq, i = int(m.group(1)), m.group(2), int(m.group(3))
        w, b = inits[node.input[1]], inits[node.input[2]]
        bn = f"{seq}.{i + 1}"
        eps = 1e-5    # nn.BatchNorm2d's default, as TileUNet builds it
        states.setdefault(k, {}).update({
            f"{seq}.{i}.weight": w,
            f"{bn}.weight": torch.ones_like(b),
            f"{bn}.bias": b,
            f"{bn}.running_mean": torch.zeros_like(b),
            f"{bn}.running_var": torch.full_like(b, 1.0 - eps),
            f"{bn}.num_batches_tracked": torch.tensor(0),
        })
    for name, t in inits.items():
        m = re.match(r"^members\.(\d+)\.(.+)$", name)
        if m is not None:
            states.setdefault(int(m.group(1)), {})[m.group(2)] = t
    out = []
    for k in sorted(states):
        net = train.TileUNet()
        want = set(net.state_dict())
        got = set(states[k])
        if want != got:
            raise SystemExit(f"member {k}: keys differ from TileUNet: missing {sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}")
        out.append(states[k])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", default=str(HERE / "model.onnx"))
    p.add_argument("--metrics", default=str(HERE / "metrics.json"), help="the package's metrics.json (each member's run)")
    p.add_argument("--parity", default=str(HERE / "parity.json"), help="the package's parity.json: the recovered mean must reproduce it")
    p.add_argument("--prep", required=True, help="prepared PNGs (prepare-dataset.ts), to read the parity fixtures as the package saw them")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    states = recover(onnx.load(args.onnx))
    runs = json.loads(Path(args.metrics).read_text())["history"]
    if len(runs) != len(states):
        raise SystemExit(f"{len(states)} members in the graph, {len(runs)} runs in {args.metrics}")
    members = []
    for st in states:
        net = train.TileUNet()
        net.load_state_dict(st)
        members.append(net.eval())
    ens = train.MeanLogits(members).eval()

    parity = json.loads(Path(args.parity).read_text())
    spec = json.loads((HERE / "input.json").read_text())
    worst = 0.0
    for case in parity["cases"]:
        stem = Path(case["file"]).stem
        u8 = train.load_png(Path(args.prep) / case["class"] / f"{stem}.png", spec)[None]
        with torch.no_grad():
            y = ens(train.to_tensor(u8, spec)).numpy().ravel().astype(np.float64)
        sample = np.asarray(case["logits_sample"])
        worst = max(worst, float(np.abs(y[: len(sample)] - sample).max()), abs(float(y.max()) - case["logits_max"]))
    print(f"recovered {len(states)} members; largest difference from parity.json: {worst:.2e} (tolerance {parity['tolerance']})")
    if worst > parity["tolerance"]:
        raise SystemExit("the recovered members do not reproduce the package: nothing written")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for k, (st, run) in enumerate(zip(states, runs)):
        ck = out / f"m{k}.pt"
        torch.save(st, ck)
        note = {"recoveredFrom": Path(args.onnx).name, "originalCheckpoint": run.get("checkpoint")}
        Path(f"{ck}.json").write_text(json.dumps({"history": run.get("history", []), "keptEpoch": run.get("keptEpoch"), "trainSeconds": run.get("trainSeconds", 0.0),
                                                  "seed": run.get("seed"), "command": run.get("command"), **note}, indent=1))
        print(f"{ck}: member {k} ({run.get('checkpoint')}, seed {run.get('seed')}, kept epoch {run.get('keptEpoch')})")


if __name__ == "__main__":
    main()
