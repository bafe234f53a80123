#!/usr/bin/env python3
"""Checkpoint forms written and re-read by HF transformers 5.x, with HF's outputs, for tailor's loader tests.

Runs on the GPU machine (transformers 5.17, torch). Usage:
    python3 tools/parity/make_checkpoint_fixtures.py --images DIR --spiece SPIECE --out tests/fixtures/checkpoint_forms
DIR holds catalog photos named <id>.jpg; SPIECE is a T5 SentencePiece model (the parity_tiny fixture's).
Each form is a tiny BLIP-2 (Flan-T5 kind) directory saved the way a user's checkpoint can be:

  all_untied   shared, encoder/decoder embed_tokens and lm_head all different (tie_word_embeddings=false
               when the model was built), float32, one file: 5.x keeps each as stored, with a warning
  untied_head  embeddings tied, lm_head different, bfloat16 file
  config_4x    config.json in transformers 4.x's form (feed_forward_proj "gelu" + dense_act_fn/is_gated_act,
               tie_word_embeddings false, torch_dtype), float16 weights in shards with
               model.safetensors.index.json, encoder/decoder embed_tokens stored as equal copies of shared

For each, HF reloads the directory (from_pretrained, float32) and its outputs on real photos of several
sizes are the reference: logits for given labels and greedy ids, plus which tensors HF tied after
loading and the activation/scaling it derived from the config (reference.json).
"""
import argparse, json, os, shutil
import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor, T5Tokenizer

from make_fixtures import QUESTIONS, ANSWERS, unit_scale_init

IDS = ["10003", "10005", "10006", "10009"]
# Inputs of other sizes, made by operations the C++ test repeats exactly: crop rows y0:y1 and columns
# x0:x1 of a photo, then repeat each pixel `repeat` times in both directions (nearest enlargement).
DERIVED = [
    {"id": "10005", "y0": 32, "y1": 192, "x0": 0, "x1": 224, "repeat": 1},   # 224x160, wider than tall
    {"id": "10006", "y0": 10, "y1": 210, "x0": 37, "x1": 187, "repeat": 1},  # 150x200, taller than wide
    {"id": "10009", "y0": 0, "y1": 224, "x0": 28, "x1": 196, "repeat": 2},   # 336x448, enlarged
]
TIED_NAMES = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"]


def derived_image(photos, d):
    a = np.asarray(photos[d["id"]])[d["y0"]:d["y1"], d["x0"]:d["x1"]]
    a = a.repeat(d["repeat"], 0).repeat(d["repeat"], 1)
    return Image.fromarray(np.ascontiguousarray(a))


def tiny_config(image_token, vocab, tie_word_embeddings):
    text = dict(model_type="t5", d_model=32, d_ff=48, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
                vocab_size=vocab, feed_forward_proj="gated-gelu", relative_attention_num_buckets=8,
                relative_attention_max_distance=20, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    if tie_word_embeddings is not None:
        text["tie_word_embeddings"] = tie_word_embeddings
    cfg = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=224, patch_size=32, hidden_act="gelu", layer_norm_eps=1e-6),
        qformer_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            encoder_hidden_size=32, cross_attention_frequency=2),
        text_config=text, num_query_tokens=4, image_token_index=image_token)
    # BLIP-2's Flan-T5: gated exact GELU (5.x maps "gated-gelu" alone to the tanh GELU).
    cfg.text_config.dense_act_fn = "gelu"
    cfg.text_config.is_gated_act = True
    return cfg


def build(form, image_token, vocab, seed):
    cfg = tiny_config(image_token, vocab, False if form == "all_untied" else None)
    if form == "all_untied":
        cfg.text_config.tie_word_embeddings = False  # nothing tied at construction: four separate tensors
    model = Blip2ForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    unit_scale_init(model, g)
    lm = model.language_model
    with torch.no_grad():
        model.query_tokens.copy_(torch.randn(model.query_tokens.shape, generator=g))
        shape = lm.shared.weight.shape
        if form == "all_untied":
            for mod in (lm.encoder.embed_tokens, lm.decoder.embed_tokens):
                mod.weight = torch.nn.Parameter(torch.randn(shape, generator=g))
        lm.lm_head.weight = torch.nn.Parameter(torch.randn(shape, generator=g) / 4.0)
    ptrs = {n: lm.get_parameter(n).data_ptr() for n in TIED_NAMES}
    if form == "all_untied":
        assert len(set(ptrs.values())) == 4, ptrs
    else:
        assert ptrs["shared.weight"] == ptrs["encoder.embed_tokens.weight"] == ptrs["decoder.embed_tokens.weight"]
        assert ptrs["lm_head.weight"] != ptrs["shared.weight"]
    for gc in (model.generation_config,):
        gc.decoder_start_token_id, gc.pad_token_id, gc.eos_token_id = 0, 0, 1
    return model


def to_4x_config(path):
    """Rewrites a 5.x config.json in the form transformers 4.x wrote for Salesforce's BLIP-2 Flan-T5."""
    c = json.load(open(path))
    t = c["text_config"]
    for k in ("scale_decoder_outputs", "dtype"):
        t.pop(k, None)
    t.update({"feed_forward_proj": "gelu", "dense_act_fn": "gelu", "is_gated_act": True, "tie_word_embeddings": False,
              "torch_dtype": "float16", "architectures": ["T5ForConditionalGeneration"], "n_positions": 512,
              "_name_or_path": "google/flan-t5-xl"})
    c.pop("dtype", None)
    c.update({"torch_dtype": "float16", "transformers_version": "4.31.0", "architectures": ["Blip2ForConditionalGeneration"]})
    json.dump(c, open(path, "w"), indent=2)


def add_equal_embed_copies(d):
    """Stores encoder/decoder embed_tokens as copies equal to shared (4.x's torch files kept every key)."""
    index_path = os.path.join(d, "model.safetensors.index.json")
    index = json.load(open(index_path))
    shard = index["weight_map"]["language_model.shared.weight"]
    tensors = load_file(os.path.join(d, shard))
    for k in ("encoder", "decoder"):
        name = f"language_model.{k}.embed_tokens.weight"
        tensors[name] = tensors["language_model.shared.weight"].clone()
        index["weight_map"][name] = shard
    save_file(tensors, os.path.join(d, shard), metadata={"format": "pt"})
    json.dump(index, open(index_path, "w"), indent=2)


def save_form(form, model, d):
    if form == "all_untied":
        model.save_pretrained(d)
    elif form == "untied_head":
        model.to(torch.bfloat16).save_pretrained(d)
    else:
        model.to(torch.float16).save_pretrained(d, max_shard_size="100KB")
        assert os.path.exists(os.path.join(d, "model.safetensors.index.json"))
        add_equal_embed_copies(d)
        to_4x_config(os.path.join(d, "config.json"))


def inputs(tok, image_token, nq, n):
    prompts = ["Question: " + QUESTIONS[i % len(QUESTIONS)] + " Answer: " for i in range(n)]
    rows = [[image_token] * nq + tok(p).input_ids for p in prompts]
    T = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    attn = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    labs = [tok(ANSWERS[i % len(ANSWERS)]).input_ids for i in range(n)]
    L = max(len(r) for r in labs)
    labels = torch.tensor([r + [-100] * (L - len(r)) for r in labs])
    return input_ids, attn, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--spiece", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    tokdir = "/tmp/ckpt_forms_tok"
    os.makedirs(tokdir, exist_ok=True)
    shutil.copy(args.spiece, os.path.join(tokdir, "spiece.model"))
    tok = T5Tokenizer.from_pretrained(tokdir)
    image_token = len(tok)
    vocab = (image_token + 1 + 7) // 8 * 8
    proc = BlipImageProcessor(size={"height": 224, "width": 224})
    photos = {i: Image.open(os.path.join(args.images, i + ".jpg")).convert("RGB") for i in IDS}
    images = [photos[i] for i in IDS] + [derived_image(photos, d) for d in DERIVED]
    pixel_values = proc(images=images, return_tensors="pt").pixel_values.float()

    for seed, form in enumerate(["all_untied", "untied_head", "config_4x"], start=10):
        d = os.path.join(args.out, form)
        shutil.rmtree(d, ignore_errors=True)
        model = build(form, image_token, vocab, seed)
        save_form(form, model, d)
        shutil.copy(args.spiece, os.path.join(d, "spiece.model"))
        proc.save_pretrained(d)

        hf = Blip2ForConditionalGeneration.from_pretrained(d, dtype=torch.float32).eval()
        lm = hf.language_model
        ptr = {n: lm.get_parameter(n).data_ptr() for n in TIED_NAMES}
        tied_to_shared = {n: ptr[n] == ptr["shared.weight"] for n in TIED_NAMES[1:]}
        tc = hf.config.text_config
        info = {"form": form, "ids": IDS, "derived": DERIVED, "questions": QUESTIONS, "answers": ANSWERS,
                "transformers": __import__("transformers").__version__, "torch": torch.__version__,
                "tied_to_shared": tied_to_shared,
                "text_config": {"dense_act_fn": tc.dense_act_fn, "is_gated_act": tc.is_gated_act,
                                "scale_decoder_outputs": tc.scale_decoder_outputs,
                                "tie_word_embeddings": tc.tie_word_embeddings},
                "files": sorted(os.listdir(d))}
        input_ids, attn, labels = inputs(tok, image_token, hf.config.num_query_tokens, len(images))
        with torch.no_grad():
            out = hf(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attn, labels=labels)
            greedy = hf.generate(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attn,
                                 max_new_tokens=10, num_beams=1, do_sample=False)
            # How much the untied tensors matter: the same model with everything tied to `shared`.
            for n in TIED_NAMES[1:]:
                mod_name, _ = n.rsplit(".", 1)
                lm.get_submodule(mod_name).weight = lm.shared.weight
            tied = hf.generate(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attn,
                               max_new_tokens=10, num_beams=1, do_sample=False)
        info["greedy_text"] = tok.batch_decode(greedy, skip_special_tokens=True)
        info["rows_that_differ_if_all_tied"] = int((tied != greedy).any(1).sum()) if tied.shape == greedy.shape else len(images)
        ref = {"input_ids": input_ids, "attention_mask": attn, "labels": labels, "logits": out.logits.contiguous(),
               "loss": out.loss.reshape(1), "greedy_ids": greedy}
        save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "reference.safetensors"))
        json.dump(info, open(os.path.join(d, "reference.json"), "w"), indent=1, ensure_ascii=False)
        print(form, json.dumps({k: info[k] for k in ("tied_to_shared", "text_config", "files", "rows_that_differ_if_all_tied")}))
        print("  greedy:", info["greedy_text"])


if __name__ == "__main__":
    main()
