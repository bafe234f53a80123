#!/usr/bin/env python3
# Hyper-parameter sweep for `tailor demo` on the GPU machine, with HF transformers' own BLIP-2:
# the same architecture, init (normal 0.02), optimizer (AdamW, warm-up + cosine, clipping) and
# photo-grouped batches as tailor's trainer, so a configuration that learns here learns in tailor.
# Also times each configuration on the CPU with 2 threads, the demo machine's budget.
# Usage: sweep.py CATALOG_DIR PREPARED_DIR MODEL_DIR CONFIGS_JSON OUT_JSON
import json, math, os, random, sys, time
import numpy as np, torch, sentencepiece as spm
from PIL import Image
from transformers import Blip2Config, Blip2ForConditionalGeneration

cat_dir, prep_dir, model_dir, cfg_path, out_path = sys.argv[1:6]
VISUAL = ["Sleeve Length", "Neck", "Collar", "Pattern", "baseColour"]
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)

def read_pairs(path):
    out = []
    for line in open(path):
        p = json.loads(line)
        if p["attribute"] in VISUAL:
            p["image"] = os.path.join(cat_dir, "images", os.path.basename(p["image"]))
            out.append(p)
    return out

train, val = read_pairs(os.path.join(prep_dir, "train.jsonl")), read_pairs(os.path.join(prep_dir, "val.jsonl"))
sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "spiece.model"))
base_cfg = json.load(open(os.path.join(model_dir, "config.json")))
raw = {}
for p in train + val:
    if p["image"] not in raw: raw[p["image"]] = Image.open(p["image"]).convert("RGB")

def pixels(size):
    px = {}
    for k, im in raw.items():
        a = np.asarray(im.resize((size, size), Image.BICUBIC), np.float32) / 255.0
        px[k] = torch.from_numpy(((a - MEAN) / STD).transpose(2, 0, 1).copy())
    return px

def tok(text): return sp.encode(text) + [1]

def batch_tensors(batch, px, nq, img_tok, dev):
    photos = list(dict.fromkeys(p["image"] for p in batch))
    slot = {k: i for i, k in enumerate(photos)}
    pv = torch.stack([px[k] for k in photos]).to(dev)
    ids = [[img_tok] * nq + tok(p["prompt"]) for p in batch]
    L = max(map(len, ids))
    inp = torch.zeros(len(ids), L, dtype=torch.long); mask = torch.zeros(len(ids), L, dtype=torch.long)
    for i, x in enumerate(ids): inp[i, :len(x)] = torch.tensor(x); mask[i, :len(x)] = 1
    lab = [tok(p["answer"]) for p in batch]
    T = max(map(len, lab))
    labels = torch.full((len(lab), T), -100, dtype=torch.long)
    for i, x in enumerate(lab): labels[i, :len(x)] = torch.tensor(x)
    rows = torch.tensor([slot[p["image"]] for p in batch])
    return pv, rows.to(dev), inp.to(dev), mask.to(dev), labels.to(dev)

def forward_loss(m, pv, rows, inp, mask, labels):
    # Image side once per photo, rows expanded after (as tailor's trainer).
    v = m.vision_model(pixel_values=pv).last_hidden_state
    q = m.query_tokens.expand(v.shape[0], -1, -1)
    qo = m.qformer(query_embeds=q, encoder_hidden_states=v,
                   encoder_attention_mask=torch.ones(v.shape[:2], dtype=torch.long, device=v.device)).last_hidden_state
    feats = m.language_projection(qo)[rows]
    emb = m.language_model.get_input_embeddings()(inp)
    nq = feats.shape[1]
    emb = torch.cat([feats, emb[:, nq:]], 1)
    out = m.language_model(inputs_embeds=emb, attention_mask=mask, labels=labels)
    return out.loss

def epoch_order(pairs, rng):
    by = {}
    for i, p in enumerate(pairs): by.setdefault(p["image"], []).append(i)
    photos = list(by); rng.shuffle(photos)
    order = []
    for ph in photos:
        v = by[ph][:]; rng.shuffle(v); order += v
    return order

@torch.no_grad()
def evaluate(m, pairs, px, nq, img_tok, dev):
    m.eval()
    correct = {}; n = {}
    for s in range(0, len(pairs), 256):
        b = pairs[s:s + 256]
        pv, rows, inp, mask, _ = batch_tensors(b, px, nq, img_tok, dev)
        v = m.vision_model(pixel_values=pv).last_hidden_state
        q = m.query_tokens.expand(v.shape[0], -1, -1)
        qo = m.qformer(query_embeds=q, encoder_hidden_states=v).last_hidden_state
        feats = m.language_projection(qo)[rows]
        emb = m.language_model.get_input_embeddings()(inp)
        emb = torch.cat([feats, emb[:, nq:]], 1)
        gen = m.language_model.generate(inputs_embeds=emb, attention_mask=mask, max_new_tokens=12, do_sample=False, num_beams=1)
        for p, g in zip(b, gen.tolist()):
            text = sp.decode([t for t in g if t > 1 and t < sp.get_piece_size()])
            a = p["attribute"]
            n[a] = n.get(a, 0) + 1
            correct[a] = correct.get(a, 0) + (text.strip() == p["answer"])
    m.train()
    return {a: correct[a] / n[a] for a in n}

def make_model(c):
    cfg = json.loads(json.dumps(base_cfg))
    cfg["text_config"]["feed_forward_proj"] = "gated-gelu"  # tailor: gelu + is_gated_act
    for k, v in c.get("model", {}).items():
        part, key = k.split(".")
        cfg[part][key] = v
    if "num_query_tokens" in c: cfg["num_query_tokens"] = c["num_query_tokens"]
    cfg["qformer_config"]["encoder_hidden_size"] = cfg["vision_config"]["hidden_size"]
    torch.manual_seed(c.get("seed", 0))
    m = Blip2ForConditionalGeneration(Blip2Config(**cfg))
    if c.get("t5init"): t5_init(m.language_model, cfg["text_config"])
    if c.get("pos_std"):
        with torch.no_grad(): m.vision_model.embeddings.position_embedding.normal_(0, c["pos_std"])
    if c.get("pos_sincos"):
        with torch.no_grad():
            pe = m.vision_model.embeddings.position_embedding
            n = pe.shape[1] - 1; g = int(round(n ** 0.5)); D = pe.shape[2]
            rows = []
            for i in range(g):
                for j in range(g):
                    v = []
                    for k in range(D // 4):
                        w = 1.0 / (100 ** (k / (D // 4)))
                        v += [math.sin(i * w), math.cos(i * w), math.sin(j * w), math.cos(j * w)]
                    rows.append(v)
            pe[0, 1:] = torch.tensor(rows) * c["pos_sincos"]
            pe[0, 0] = 0
    return m, cfg

@torch.no_grad()
def t5_init(lm, t):
    # T5's own initialisation (mesh-tensorflow): scales that keep attention logits and the
    # residual stream O(1) without a 1/sqrt(d) in attention.
    d, dkv, h, dff = t["d_model"], t["d_kv"], t["num_heads"], t["d_ff"]
    for n, p in lm.named_parameters():
        if "layer_norm" in n: continue
        if n.endswith("shared.weight") or "embed_tokens" in n: p.normal_(0, 1.0)
        elif n.endswith("lm_head.weight"): p.normal_(0, d ** -0.5)
        elif n.endswith(".q.weight"): p.normal_(0, (d * dkv) ** -0.5)
        elif n.endswith(".k.weight") or n.endswith(".v.weight"): p.normal_(0, d ** -0.5)
        elif n.endswith(".o.weight"): p.normal_(0, (h * dkv) ** -0.5)
        elif "relative_attention_bias" in n: p.normal_(0, d ** -0.5)
        elif ".wi" in n: p.normal_(0, d ** -0.5)
        elif n.endswith(".wo.weight"): p.normal_(0, dff ** -0.5)

def cpu_speed(c, px):
    # samples/s of a training step on 2 CPU threads
    torch.set_num_threads(2)
    m, cfg = make_model(c)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    nq = cfg["num_query_tokens"]; it = cfg["image_token_index"]
    rng = random.Random(0); order = epoch_order(train, rng); bs = c["batch"]
    t0 = None; done = 0
    for s in range(8):
        b = [train[i] for i in order[s * bs:(s + 1) * bs]]
        if s == 2: t0 = time.time(); done = 0
        loss = forward_loss(m, *batch_tensors(b, px, nq, it, "cpu"))
        opt.zero_grad(); loss.backward(); opt.step(); done += len(b)
    return done / (time.time() - t0)

def run(c):
    dev = "cuda"
    size = c.get("model", {}).get("vision_config.image_size", base_cfg["vision_config"]["image_size"])
    px = pixels(size)
    res = {"config": c}
    if c.get("cpu", True): res["cpu_samples_per_s"] = cpu_speed(c, px)
    m, cfg = make_model(c); m.to(dev); m.train()
    nq = cfg["num_query_tokens"]; it = cfg["image_token_index"]
    nprod = c.get("products", 0)
    tr = train
    if nprod:
        keep = set(list(dict.fromkeys(p["image"] for p in train))[:int(nprod * 0.8)])
        tr = [p for p in train if p["image"] in keep]
    hist = []; t0 = time.time(); total_steps = 0
    stages = c.get("stages") or [{"epochs": c["epochs"], "lr": c["lr"], "freeze": []}]
    for si, sg in enumerate(stages):
        # As `tailor train --full --freeze ...` run once per stage, each stage on the last's weights.
        for p in m.parameters(): p.requires_grad_(True)
        parts = {"language": m.language_model, "vision": m.vision_model, "qformer": m.qformer}
        for f in sg.get("freeze", []):
            for p in parts[f].parameters(): p.requires_grad_(False)
        params = [p for p in m.parameters() if p.requires_grad]
        bs, epochs, lr = sg.get("batch", c["batch"]), sg["epochs"], sg["lr"]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=c.get("wd", 0.01))
        steps_per_epoch = math.ceil(len(tr) / bs); total = steps_per_epoch * epochs; total_steps += total
        warm = math.ceil(c.get("warmup", 0.05) * total)
        rng = random.Random(c.get("seed", 0) + si); step = 0
        for ep in range(epochs):
            order = epoch_order(tr, rng)
            for s in range(0, len(order), bs):
                b = [tr[i] for i in order[s:s + bs]]
                lr_now = lr * (step + 1) / warm if step < warm else lr * 0.5 * (1 + math.cos(math.pi * min(1, (step - warm) / max(1, total - warm))))
                for g in opt.param_groups: g["lr"] = lr_now
                loss = forward_loss(m, *batch_tensors(b, px, nq, it, dev))
                opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); step += 1
            acc = evaluate(m, val, px, nq, it, dev)
            hist.append({"epoch": len(hist) + 1, "loss": loss.item(), "acc": acc, "mean": sum(acc.values()) / len(acc)})
            print(c["name"], hist[-1], flush=True)
    total = total_steps; epochs = len(hist)
    res["history"] = hist; res["train_pairs"] = len(tr); res["steps"] = total; res["gpu_s"] = time.time() - t0
    if "cpu_samples_per_s" in res: res["cpu_train_s_est"] = len(tr) * epochs / res["cpu_samples_per_s"]
    return res

configs = json.load(open(cfg_path))
only = os.environ.get("ONLY")
results = []
for c in configs:
    if only and c["name"] not in only.split(","): continue
    r = run(c); results.append(r)
    json.dump(results, open(out_path, "w"), indent=1)
