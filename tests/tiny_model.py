"""Build a tiny random Llama and a locally trained byte-level BPE tokenizer, fully offline.

Used by the tests (session fixture ``tiny_model_dir``) and by ``benchmarks/``. The chat
template is ChatML-like with ``{% generation %}`` markers so TRL's assistant-only loss works,
and is prefix-preserving so DPO's prompt/completion split is clean.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"  # noqa: E501
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


def _corpus(limit: int = 120) -> list[str]:
    """Deterministic local text: stdlib docstrings plus lines covering letters and punctuation."""
    lines: list[str] = []
    stdlib = Path(ast.__file__).parent
    for path in sorted(stdlib.glob("*.py"))[:limit]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
        except SyntaxError:
            continue
        doc = ast.get_docstring(tree)
        if doc:
            lines.extend(doc.splitlines())
    lines += [
        "Question: Which option is right? A. one B. two C. three D. four",
        "The answer is (A). The answer is (B). The answer is (C). The answer is (D).",
        "Answer: Let's think step by step.",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ 0123456789",
    ] * 20
    return lines


def build_tiny_model(
    out: Path, arch: str = "llama", hidden: int = 64, layers: int = 2, vocab: int = 1024, seed: int = 0
) -> Path:
    """Write a tokenizer + randomly initialised causal LM to ``out`` and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        min_frequency=2,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        padding_side="right",
        model_max_length=2048,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(out)

    ids = dict(bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id)
    torch.manual_seed(seed)
    if arch == "qwen2":
        from transformers import Qwen2Config as Config
        from transformers import Qwen2ForCausalLM as Model
    else:
        from transformers import LlamaConfig as Config
        from transformers import LlamaForCausalLM as Model
    cfg = Config(
        vocab_size=len(hf_tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        **ids,
    )
    model = Model(cfg)
    model.generation_config = GenerationConfig(do_sample=False, max_new_tokens=32, **ids)
    model.save_pretrained(out)
    return out


if __name__ == "__main__":  # python tests/tiny_model.py OUT_DIR
    print(build_tiny_model(Path(sys.argv[1])))
