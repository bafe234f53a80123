#!/usr/bin/env python3
"""HF transformers + PEFT side of the benchmark (same shapes as tailor_gpu_bench): LoRA r=8 on q,v of
the blip2-flan-t5-xl-shaped model in /tmp/xl, bf16, SDPA; 16 question tokens after 32 image tokens,
8 answer tokens; generation of 10 tokens from image bytes. One JSON line per measurement."""
import io, json, sys, time
import torch
from PIL import Image
from peft import LoraConfig, get_peft_model
from transformers import Blip2ForConditionalGeneration, BlipImageProcessor, T5Tokenizer

XL = "/tmp/xl"
mode = sys.argv[1]
batches = [int(x) for x in sys.argv[2].split(",")]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 10

def sync():
    torch.cuda.synchronize()

model = Blip2ForConditionalGeneration.from_pretrained(XL, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
if mode == "train":
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, bias="none", target_modules=["q", "v"]))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    for B in batches:
        ids = torch.randint(3, 1000, (B, 48), device="cuda")
        ids[:, :32] = 32100
        mask = torch.ones_like(ids)
        labels = torch.randint(3, 1000, (B, 8), device="cuda")
        px = torch.randn(B, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
        def step():
            out = model(pixel_values=px, input_ids=ids, attention_mask=mask, labels=labels)
            opt.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            return out.loss
        for _ in range(3):
            step()
        sync()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            sync()
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(json.dumps({"bench": "train", "impl": "hf+peft", "batch": B, "step_ms": round(med * 1e3, 1),
                          "samples_per_s": round(B / med, 1),
                          "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)
else:
    model.eval()
    proc = BlipImageProcessor.from_pretrained(XL)
    tok = T5Tokenizer.from_pretrained(XL)
    data = open(sys.argv[4], "rb").read()
    prompt = "Question: What is the sleeve length of the shirt in this picture? Answer: "
    q = [32100] * 32 + tok(prompt).input_ids
    for B in batches:
        def once():
            imgs = [Image.open(io.BytesIO(data)).convert("RGB") for _ in range(B)]
            px = proc(images=imgs, return_tensors="pt").pixel_values.to("cuda", torch.bfloat16)
            ids = torch.tensor([q] * B, device="cuda")
            with torch.no_grad():
                out = model.generate(pixel_values=px, input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=10, min_new_tokens=10, num_beams=1)
            tok.batch_decode(out, skip_special_tokens=True)
            return out.shape[1] - 1
        for _ in range(3):
            once()
        sync()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            n = once()
            sync()
            times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        print(json.dumps({"bench": "generate", "impl": "hf", "batch": B, "new_tokens": n, "ms": round(med * 1e3, 1),
                          "answers_per_s": round(B / med, 1),
                          "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)
