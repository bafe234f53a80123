"""PEFT / HF load check of `tailor train` outputs (run where transformers + peft are installed).

  python3 tools/peft_check/check.py BASE_MODEL_DIR TRAIN_OUT_DIR [TAILOR_LOGITS]

Loads the base model with Blip2ForConditionalGeneration.from_pretrained, applies TRAIN_OUT_DIR/adapter
with PeftModel.from_pretrained, and checks: every adapter tensor lands in a LoRA module (none missing,
none unexpected), PEFT's teacher-forced logits equal those of TRAIN_OUT_DIR/model (tailor's merged
model, loaded by HF), and PEFT's own merge_and_unload() gives tailor's merged weights. With
TAILOR_LOGITS (a safetensors file of pixel_values, input_ids, attention_mask, labels and the logits
tailor computed with its merged model, as tests/train/untied_checkpoint_test.cpp writes), HF's logits
of the merged model on those inputs must equal tailor's too. Exit 1 on a mismatch.
"""
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import Blip2ForConditionalGeneration


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    base_dir, out_dir = sys.argv[1], sys.argv[2]
    ok = True
    base = Blip2ForConditionalGeneration.from_pretrained(base_dir, dtype=torch.float32).eval()
    cfg = base.config
    torch.manual_seed(0)
    size = cfg.vision_config.image_size
    pixels = torch.randn(2, 3, size, size)
    top = min(cfg.image_token_index, cfg.text_config.vocab_size)  # ordinary token ids only
    prompt = torch.randint(3, top, (2, 7))
    prompt[:, -1] = 1  # eos
    image_tokens = torch.full((2, cfg.num_query_tokens), cfg.image_token_index)
    ids = torch.cat([image_tokens, prompt], 1)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    labels = torch.randint(3, top, (2, 5))
    labels[1, 3:] = -100

    def logits(model):
        with torch.no_grad():
            return model(pixel_values=pixels, input_ids=ids, attention_mask=mask, labels=labels).logits

    base_logits = logits(base)
    peft = PeftModel.from_pretrained(base, out_dir + "/adapter").eval()
    saved = load_file(out_dir + "/adapter/adapter_model.safetensors")
    params = dict(peft.named_parameters())
    lora_params = {k for k in params if ".lora_A." in k or ".lora_B." in k}
    used = set()
    for key, value in saved.items():
        name = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(".lora_B.weight", ".lora_B.default.weight")
        if name not in params:
            print("adapter tensor with no LoRA module in PEFT's model:", key)
            ok = False
            continue
        used.add(name)
        if not torch.equal(params[name].detach().cpu(), value):
            print("adapter tensor not loaded as saved:", key)
            ok = False
    for name in sorted(lora_params - used):
        print("PEFT LoRA parameter not in the file:", name)
        ok = False
    print(f"adapter: {len(saved)} tensors, PEFT LoRA parameters: {len(lora_params)}")

    peft_logits = logits(peft)
    merged = Blip2ForConditionalGeneration.from_pretrained(out_dir + "/model", dtype=torch.float32).eval()
    merged_logits = logits(merged)
    adapter_effect = rel(peft_logits, base_logits)
    err = rel(merged_logits, peft_logits)
    print(f"PEFT (base + adapter) vs tailor's merged model: logits relative error {err:.3g} "
          f"(adapter changes the logits by {adapter_effect:.3g})")
    if err > 1e-5 or adapter_effect < 1e-4:
        ok = False

    unloaded = peft.merge_and_unload()
    tailor_sd = merged.state_dict()
    worst = 0.0
    for name, value in unloaded.state_dict().items():
        if name not in tailor_sd:
            continue
        worst = max(worst, (value.double() - tailor_sd[name].double()).abs().max().item())
    print(f"PEFT merge_and_unload vs tailor's merged weights: max abs difference {worst:.3g}")
    if worst > 1e-5:
        ok = False
    if len(sys.argv) > 3:
        t = load_file(sys.argv[3])
        with torch.no_grad():
            hf = merged(pixel_values=t["pixel_values"], input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                        labels=t["labels"]).logits
        err = rel(hf, t["logits"])
        print(f"HF's logits of tailor's merged model vs tailor's own: relative error {err:.3g}")
        if err > 1e-4:
            ok = False
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
