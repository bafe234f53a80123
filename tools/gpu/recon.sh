#!/usr/bin/env bash
# One-off look at the GPU machine: versions, and HF's own key names for a tiny BLIP-2.
set -x
nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c 'import torch,transformers,peft;print(torch.__version__,transformers.__version__,peft.__version__, torch.utils.cmake_prefix_path)'
cmake --version|head -1; which ninja nvcc g++; g++ --version|head -1
T=$(python3 -c 'import transformers,os;print(os.path.dirname(transformers.__file__))'); P=$(python3 -c 'import peft,os;print(os.path.dirname(peft.__file__))')
(cd / && tar czf $OUT/ref_src.tgz $T/models/blip_2 $T/models/t5 $T/models/blip/image_processing_blip*.py $T/conversion_mapping.py $T/core_model_loading.py $T/image_transforms.py $T/image_processing_utils_fast.py $T/tokenization_utils_sentencepiece.py $T/generation/utils.py $T/generation/beam_search.py $T/modeling_utils.py $P/tuners/lora/layer.py $P/tuners/lora/model.py $P/tuners/lora/config.py $P/utils/save_and_load.py $P/utils/constants.py 2>&1 | tail -3)
cd /tmp; PYTHONUNBUFFERED=1 python3 - <<'EOF' > $OUT/keys.txt 2>&1
import torch, json
from transformers import Blip2Config, Blip2ForConditionalGeneration
cfg = Blip2Config(vision_config=dict(hidden_size=32,intermediate_size=64,num_hidden_layers=2,num_attention_heads=2,image_size=224,patch_size=14),
  qformer_config=dict(hidden_size=32,intermediate_size=64,num_hidden_layers=2,num_attention_heads=2,encoder_hidden_size=32,cross_attention_frequency=2),
  text_config=dict(model_type="t5",d_model=32,d_ff=64,num_layers=2,num_decoder_layers=2,num_heads=2,d_kv=16,vocab_size=200,dense_act_fn="gelu",is_gated_act=True,tie_word_embeddings=False,feed_forward_proj="gated-gelu"),
  num_query_tokens=4, image_token_index=199)
m = Blip2ForConditionalGeneration(cfg)
for k,v in m.state_dict().items(): print(k, tuple(v.shape), v.dtype)
m.save_pretrained("/tmp/tiny")
import os; print(os.listdir("/tmp/tiny"))
from safetensors import safe_open
f = safe_open("/tmp/tiny/model.safetensors","pt")
print("SAVED KEYS"); [print(k) for k in f.keys()]
print(f.metadata())
print(open("/tmp/tiny/config.json").read())
print(m)
EOF
tail -5 $OUT/keys.txt
