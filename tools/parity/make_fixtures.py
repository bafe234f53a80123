#!/usr/bin/env python3
"""Reference outputs of HF transformers for a tiny BLIP-2 (Flan-T5 kind), for tailor's parity tests.

Runs on the GPU machine (transformers 5.x, sentencepiece, torch). Usage:
    python3 tools/parity/make_fixtures.py --images DIR --out tests/fixtures/parity_tiny
DIR holds the catalog photos named <id>.jpg (tools/gpu/parity.sh copies them). Writes a model directory
(config.json, model.safetensors, spiece.model, preprocessor_config.json) and reference.safetensors +
reference.json with every intermediate the C++ tests compare against.
"""
import argparse, json, os, math
import numpy as np
import torch
from PIL import Image
import sentencepiece as spm
from safetensors.torch import save_file
from transformers import Blip2Config, Blip2ForConditionalGeneration, BlipImageProcessor, T5Tokenizer

IDS = ["10003", "10005", "10006", "10009"]
QUESTIONS = [
    "What is the sleeve length of the shirt in this picture?",
    "What is the colour of the shirt in this picture?",
    "What is the pattern of the shirt in this picture?",
    "What is the neck type of the shirt in this picture?",
]
ANSWERS = ["Sleeve Length: Short Sleeves", "baseColour: Blue", "Pattern: Solid", "Neck: Round Neck"]
TOKENIZER_STRINGS = QUESTIONS + ANSWERS + [
    "Question: What is the Fit of the shirt in this picture? Answer: ",
    "Hello <extra_id_0> world <extra_id_99>.",
    "  leading and   multiple   spaces  ",
    "Café naïve — déjà vu 123,456.78",
    "emoji 😀 and tab\there\nnewline",
    "Sleeve Length:Long Sleeves",
    "",
]

def corpus():
    s = []
    for q in QUESTIONS:
        s += [q, "Question: " + q + " Answer: "]
    s += ["Fabric: Cotton", "Fit: Regular Fit", "Collar: Spread Collar", "Pattern: Striped", "Pattern: Checked",
          "Pattern: Printed", "Neck: V-Neck", "Neck: Polo Collar", "Sleeve Length: Long Sleeves",
          "Sleeve Length: Sleeveless", "Sleeve Styling: Regular Sleeves", "baseColour: Black", "baseColour: White",
          "baseColour: Red", "baseColour: Navy Blue", "baseColour: Grey Melange",
          "This shirt is made of soft cotton and has a regular fit with long sleeves.",
          "The fabric moves easily with you and keeps you cool all day long.",
          "Café naïve déjà vu. The quick brown fox jumps over the lazy dog 0123456789."]
    return s * 3

def derived_images(photos):
    """Inputs for the resize path, made by operations the C++ test repeats exactly."""
    a = np.asarray(photos[1])[30:180, 10:210]            # crop 200x150 -> upscaled to 224
    b = np.asarray(photos[3]).repeat(2, 0).repeat(2, 1)  # nearest 2x -> 448x448, downscaled to 224
    return [Image.fromarray(np.ascontiguousarray(a)), Image.fromarray(np.ascontiguousarray(b))]

def unit_scale_init(model, g):
    """Weights with unit-scale activations, so logits are far from ties and greedy/beam ids are stable."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g) + (1.0 if "norm" in name.lower() or "LayerNorm" in name else 0.0))
        model.language_model.shared.weight.copy_(torch.randn(model.language_model.shared.weight.shape, generator=g))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)

    # Tokenizer: a small unigram model with T5's special-token layout.
    with open("/tmp/corpus.txt", "w") as f:
        f.write("\n".join(corpus()) + "\n")
    spm.SentencePieceTrainer.train(input="/tmp/corpus.txt", model_prefix=os.path.join(args.out, "spiece"),
                                   vocab_size=200, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, num_threads=1)
    os.remove(os.path.join(args.out, "spiece.vocab"))
    tok = T5Tokenizer.from_pretrained(args.out)  # converts spiece.model as for a Hub checkpoint
    tok_vocab = len(tok)
    image_token = tok_vocab  # first id after the tokenizer's

    cfg = Blip2Config(
        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           image_size=224, patch_size=32, hidden_act="gelu", layer_norm_eps=1e-6),
        qformer_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                            encoder_hidden_size=64, cross_attention_frequency=2),
        text_config=dict(model_type="t5", d_model=64, d_ff=96, d_kv=16, num_heads=4, num_layers=2, num_decoder_layers=2,
                         vocab_size=(image_token + 1 + 7) // 8 * 8, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False, relative_attention_num_buckets=8,
                         relative_attention_max_distance=20,
                         decoder_start_token_id=0, pad_token_id=0, eos_token_id=1),
        num_query_tokens=6, image_token_index=image_token)
    # BLIP-2's Flan-T5 uses exact GELU in a gated FFN; HF 5.x maps "gated-gelu" to tanh GELU, so set it.
    cfg.text_config.dense_act_fn = "gelu"
    cfg.text_config.is_gated_act = True
    cfg.text_config.decoder_start_token_id = 0
    model = Blip2ForConditionalGeneration(cfg).eval()
    model.generation_config.decoder_start_token_id = 0
    model.generation_config.pad_token_id = 0
    model.generation_config.eos_token_id = 1
    g = torch.Generator().manual_seed(1)
    unit_scale_init(model, g)
    with torch.no_grad():
        lm = model.language_model
        if lm.lm_head.weight.data_ptr() == lm.shared.weight.data_ptr():
            lm.lm_head.weight = torch.nn.Parameter(torch.randn(lm.shared.weight.shape, generator=g) / 8.0)
        else:
            lm.lm_head.weight.copy_(torch.randn(lm.shared.weight.shape, generator=g) / 8.0)
        model.query_tokens.copy_(torch.randn(model.query_tokens.shape, generator=g))
    assert model.language_model.lm_head.weight.data_ptr() != model.language_model.shared.weight.data_ptr()

    # Weights as transformers 5.x writes them (qkv.bias, tied embed_tokens copies) plus the untied lm_head.
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    cfg_dict = cfg.to_dict()
    cfg_dict["text_config"]["dense_act_fn"] = "gelu"
    cfg_dict["text_config"]["is_gated_act"] = True
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
    proc = BlipImageProcessor(size={"height": 224, "width": 224})
    proc.save_pretrained(args.out)

    photos = [Image.open(os.path.join(args.images, i + ".jpg")).convert("RGB") for i in IDS]
    images = photos + derived_images(photos)
    pixel_values = proc(images=images, return_tensors="pt").pixel_values.float()

    ref = {"pixel_values": pixel_values}
    info = {"ids": IDS, "questions": QUESTIONS, "answers": ANSWERS, "derived": ["crop(10005, y30:180, x10:210)", "nearest2x(10009)"],
            "transformers": __import__("transformers").__version__, "torch": torch.__version__}
    info["tokenizer"] = [{"text": s, "ids": tok(s).input_ids, "decoded": tok.decode(tok(s).input_ids, skip_special_tokens=True)}
                         for s in TOKENIZER_STRINGS]

    with torch.no_grad():
        pv = pixel_values[:4]
        vision = model.vision_model(pixel_values=pv).last_hidden_state
        q = model.qformer(query_embeds=model.query_tokens.expand(4, -1, -1), encoder_hidden_states=vision,
                          encoder_attention_mask=torch.ones(vision.shape[:2], dtype=torch.long)).last_hidden_state
        feats = model.language_projection(q)
        ref["vision_out"], ref["qformer_out"], ref["image_features"] = vision, q, feats
        prompts = ["Question: " + x + " Answer: " for x in QUESTIONS]
        enc_rows = [[image_token] * cfg.num_query_tokens + tok(p).input_ids for p in prompts]
        T = max(len(r) for r in enc_rows)
        input_ids = torch.tensor([r + [0] * (T - len(r)) for r in enc_rows])
        attn = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in enc_rows])
        lab_rows = [tok(a).input_ids for a in ANSWERS]
        L = max(len(r) for r in lab_rows)
        labels = torch.tensor([r + [-100] * (L - len(r)) for r in lab_rows])
        out = model(pixel_values=pv, input_ids=input_ids, attention_mask=attn, labels=labels)
        ref["input_ids"], ref["attention_mask"], ref["labels"] = input_ids, attn, labels
        ref["logits"], ref["loss"] = out.logits, out.loss.reshape(1)
        ref["encoder_out"] = out.language_model_outputs.encoder_last_hidden_state
        greedy = model.generate(pixel_values=pv, input_ids=input_ids, attention_mask=attn, max_new_tokens=12,
                                num_beams=1, do_sample=False)
        beam = model.generate(pixel_values=pv, input_ids=input_ids, attention_mask=attn, max_new_tokens=12,
                              num_beams=3, do_sample=False)
        beam_lp = model.generate(pixel_values=pv, input_ids=input_ids, attention_mask=attn, max_new_tokens=10,
                                 num_beams=4, length_penalty=0.5, min_new_tokens=3, do_sample=False)
        ref["greedy_ids"], ref["beam3_ids"], ref["beam4_lp05_min3_ids"] = greedy, beam, beam_lp
        info["greedy_text"] = tok.batch_decode(greedy, skip_special_tokens=True)
        info["beam3_text"] = tok.batch_decode(beam, skip_special_tokens=True)
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(args.out, "reference.safetensors"))
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    print("fixtures written to", args.out)
    print("greedy:", info["greedy_text"])
    print("beam3:", info["beam3_text"])
    print("loss:", float(out.loss))

if __name__ == "__main__":
    main()
