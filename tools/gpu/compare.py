#!/usr/bin/env python3
"""Compares tailor's full-size outputs with HF's (written by xl_reference.py / tailor_gpu_bench parity)."""
import json, sys
import torch
from safetensors.torch import load_file

res = {}
for name in ("f32", "bf16"):
    ref = load_file(f"/tmp/xl_ref_{name}.safetensors")
    ours = load_file(f"/tmp/xl_tailor_{name}.safetensors")
    r = {}
    for k in ("vision_out", "image_features", "encoder_out", "logits"):
        a, b = ours[k].double(), ref[k].double()
        r[k + "_rel_err"] = float((a - b).norm() / b.norm())
    hf = ref["greedy_ids"][:, 1:]
    t = ours["greedy_ids"]
    n = min(hf.shape[1], t.shape[1])
    r["greedy_tokens_equal"] = float((hf[:, :n] == t[:, :n]).float().mean())
    r["greedy_rows_identical"] = int(sum(bool(torch.equal(hf[i, :n], t[i, :n])) for i in range(hf.shape[0])))
    r["argmax_agreement"] = float((ours["logits"].argmax(-1) == ref["logits"].argmax(-1)).float().mean())
    res[name] = r
print(json.dumps(res, indent=1))
