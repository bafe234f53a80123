#!/usr/bin/env python3
"""HF side of the full-size checks: a blip2-flan-t5-xl-shaped model with random weights.

Writes /tmp/xl (HF layout: config.json, model.safetensors in bf16 with an untied lm_head,
spiece.model, preprocessor_config.json), /tmp/xl_inputs.safetensors (4 real photos, prompts with 32
<image> tokens, labels) and HF's outputs in f32 and bf16 (/tmp/xl_ref_f32.safetensors,
/tmp/xl_ref_bf16.safetensors). Idempotent.
XXL_MODEL_ONLY=1 writes /tmp/xxl instead: the blip2-flan-t5-xxl shape (T5-XXL: d_model 4096, 64 heads,
d_ff 10240, 24+24 layers), model files only (the quantization runs of issue 19)."""
import json, os, shutil, sys
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor, T5Tokenizer

XL = "/tmp/xl"
IDS = ["10003", "10005", "10006", "10009"]
QUESTIONS = ["What is the sleeve length of the shirt in this picture?", "What is the colour of the shirt in this picture?",
             "What is the pattern of the shirt in this picture?", "What is the neck type of the shirt in this picture?"]
ANSWERS = ["Sleeve Length: Short Sleeves", "baseColour: Blue", "Pattern: Solid", "Neck: Round Neck"]

def xl_config(xxl=False):
    d_model, d_ff, heads = (4096, 10240, 64) if xxl else (2048, 5120, 32)
    cfg = Blip2Config(
        vision_config=dict(),  # defaults are EVA ViT-g/14: 1408, 39 layers, 16 heads, 6144, 224/14
        qformer_config=dict(),  # 768, 12 layers, 12 heads, 3072, cross every 2nd layer, encoder 1408
        text_config=dict(model_type="t5", vocab_size=32128, d_model=d_model, d_kv=64, d_ff=d_ff, num_layers=24,
                         num_decoder_layers=24, num_heads=heads, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
        num_query_tokens=32, image_token_index=32100)
    cfg.text_config.dense_act_fn = "gelu"  # BLIP-2's Flan-T5: gated exact GELU
    cfg.text_config.is_gated_act = True
    cfg.text_config.decoder_start_token_id = 0
    return cfg

def main():
    global XL
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    xxl = bool(os.environ.get("XXL_MODEL_ONLY"))
    if xxl:
        XL = "/tmp/xxl"
    cfg = xl_config(xxl)
    if not os.path.exists(XL + "/model.safetensors"):
        os.makedirs(XL, exist_ok=True)
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = Blip2ForConditionalGeneration(cfg)
        lm = model.language_model
        lm.lm_head.weight = torch.nn.Parameter(torch.randn_like(lm.shared.weight) * 0.05)
        sd = {k: v.detach().to(torch.bfloat16).contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(sd, XL + "/model.safetensors", metadata={"format": "pt"})
        d = cfg.to_dict()
        d["text_config"]["dense_act_fn"] = "gelu"
        d["text_config"]["is_gated_act"] = True
        json.dump(d, open(XL + "/config.json", "w"), indent=2)
        shutil.copy(repo + "/tests/fixtures/parity_tiny/spiece.model", XL + "/spiece.model")
        BlipImageProcessor(size={"height": 224, "width": 224}).save_pretrained(XL)
        del model, sd
        torch.cuda.empty_cache()
    if os.environ.get("XL_MODEL_ONLY") or xxl:
        return
    tok = T5Tokenizer.from_pretrained(XL)
    proc = BlipImageProcessor.from_pretrained(XL)
    photos = [Image.open(f"{repo}/.gpu/parity_images/{i}.jpg").convert("RGB") for i in IDS]
    pv = proc(images=photos, return_tensors="pt").pixel_values.float()
    rows = [[32100] * 32 + tok("Question: " + q + " Answer: ").input_ids for q in QUESTIONS]
    T = max(map(len, rows))
    ids = torch.tensor([r + [0] * (T - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    lab = [tok(a).input_ids for a in ANSWERS]
    L = max(map(len, lab))
    labels = torch.tensor([r + [-100] * (L - len(r)) for r in lab])
    save_file({"pixel_values": pv, "input_ids": ids, "attention_mask": mask, "labels": labels}, "/tmp/xl_inputs.safetensors")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        out_path = f"/tmp/xl_ref_{name}.safetensors"
        if os.path.exists(out_path):
            continue
        model = Blip2ForConditionalGeneration.from_pretrained(XL, dtype=dtype).cuda().eval()
        with torch.no_grad():
            p, i, m, l = pv.cuda(), ids.cuda(), mask.cuda(), labels.cuda()
            vision = model.vision_model(pixel_values=p.to(dtype)).last_hidden_state
            feats = model.get_image_features(p.to(dtype), return_dict=True).pooler_output
            out = model(pixel_values=p.to(dtype), input_ids=i, attention_mask=m, labels=l)
            gen = model.generate(pixel_values=p.to(dtype), input_ids=i, attention_mask=m, max_new_tokens=10, num_beams=1)
        save_file({"vision_out": vision.float().cpu().contiguous(), "image_features": feats.float().cpu().contiguous(),
                   "encoder_out": out.language_model_outputs.encoder_last_hidden_state.float().cpu().contiguous(),
                   "logits": out.logits.float().cpu().contiguous(), "greedy_ids": gen.cpu().contiguous()}, out_path)
        print(name, "loss", float(out.loss), flush=True)
        del model
        torch.cuda.empty_cache()

if __name__ == "__main__":
    main()
