# Compares the dump of dump.cpp with HF transformers 5.17 (T5Tokenizer.from_pretrained, BlipImageProcessor,
# torch uint8 antialiased bicubic, PIL). Run in the dump folder on the GPU machine; see run.sh.
import json, os, sys, shutil
import numpy as np, torch
import transformers, tokenizers, torchvision
from PIL import Image
here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)
print("transformers", transformers.__version__, "tokenizers", tokenizers.__version__, "torchvision", torchvision.__version__, "torch", torch.__version__)
from transformers import T5Tokenizer, BlipImageProcessor, AutoTokenizer
tok = T5Tokenizer.from_pretrained("tokdir")
print("tokenizer class", type(tok).__name__, "len", len(tok), "vocab_size", tok.vocab_size)
d = json.load(open("tok.json"))
bad = 0
for e in d["encode"]:
    hf = tok(e["text"]).input_ids
    if hf != e["ids"]:
        bad += 1
        print("ENCODE MISMATCH", repr(e["text"]), "hf", hf, "ours", e["ids"], "hf tokens", tok.convert_ids_to_tokens(hf))
print("encode cases", len(d["encode"]), "mismatches", bad)
bad = 0
for e in d["decode"]:
    hf = tok.decode(e["ids"], skip_special_tokens=e["skip"])
    if hf != e["text"]:
        bad += 1
        print("DECODE MISMATCH", e["ids"], e["skip"], "hf", repr(hf), "ours", repr(e["text"]))
print("decode cases", len(d["decode"]), "mismatches", bad)
print("extra ids", tok.convert_tokens_to_ids(["<extra_id_0>", "<extra_id_99>"]), "specials", tok.all_special_ids[:5])

proc = BlipImageProcessor(size={"height": 224, "width": 224})
print("image processor", type(proc).__name__, getattr(proc, "backend", "?"))
for e in json.load(open("img.json")):
    w, h, b = e["w"], e["h"], e["base"]
    rgb = np.fromfile(b + ".rgb", dtype=np.uint8).reshape(h, w, 3)
    ours_r = np.fromfile(b + ".resized.rgb", dtype=np.uint8).reshape(224, 224, 3).astype(np.int32)
    ours_f = np.fromfile(b + ".f32", dtype=np.float32).reshape(3, 224, 224)
    t = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()
    tr = torch.nn.functional.interpolate(t, size=(224, 224), mode="bicubic", antialias=True) if (w, h) != (224, 224) else t
    tr = tr[0].permute(1, 2, 0).numpy().astype(np.int32)
    pil = np.asarray(Image.fromarray(rgb).resize((224, 224), Image.BICUBIC)).astype(np.int32)
    pv = proc(images=Image.fromarray(rgb), return_tensors="pt").pixel_values[0].numpy()
    pv2 = proc(images=rgb, return_tensors="pt").pixel_values[0].numpy()
    print(f"{w}x{h}: resize vs torch uint8 max {np.abs(ours_r - tr).max()} (unequal {np.mean(ours_r != tr):.5f}); "
          f"vs PIL max {np.abs(ours_r - pil).max()} (unequal {np.mean(ours_r != pil):.5f}); "
          f"pixel_values vs HF(PIL input) max {np.abs(ours_f - pv).max():.3g}, vs HF(numpy input) max {np.abs(ours_f - pv2).max():.3g}")
