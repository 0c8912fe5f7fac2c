"""Batched generation with transformers (``--model hf``), on CPU or GPU, data parallel under ``accelerate launch``.

``model_args`` keys read (lm-eval's ``hf`` names): ``pretrained``, ``revision``, ``dtype`` (default
``auto``), ``trust_remote_code``, ``tokenizer``, ``attn_implementation``, ``gguf_file``, ``device``,
``max_length``; the other keys lm-eval knows (``batch_size``, ``parallelize``...) are ignored here.

Each prompt is rendered with the model's own chat template (``add_generation_prompt=True``);
a tokenizer without a chat template gets the plain prompt (the user turn's text, earlier turns as
``Role: text`` lines) with its special tokens, and ``chat_template: false`` is recorded with the
response. Prompts are left-padded, sorted by length within a shard (fixed batches, so a rerun of
a shard is bit-identical on the same hardware), and prompts longer than the context less
``max_new_tokens`` keep their last tokens. Under ``accelerate launch`` each process takes a share of
the pending shards (``PartialState().split_between_processes``) on its own device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.generation.config import ModelSpec

_TRUE = {"1", "true", "yes", "on"}


def render_plain(messages: Sequence[dict[str, str]]) -> str:
    """The prompt for a model without a chat template."""
    if len(messages) == 1:
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\n\nAssistant:"


def render(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], bool]:
    """Token ids of a prompt and whether the chat template was applied."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"], True
    return tokenizer(render_plain(messages), add_special_tokens=True)["input_ids"], False


class HFGenerator:
    """One loaded model; :meth:`generate` answers a list of prompts."""

    backend = "hf"

    def __init__(self, spec: ModelSpec, *, device: str | None = None, batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own bar per model shows the progress
        args = spec.args
        self.spec = spec
        self.batch_size = batch_size
        trust = str(args.get("trust_remote_code", "")).lower() in _TRUE
        revision = args.get("revision")
        self.device = args.get("device") or device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(
            args.get("tokenizer") or spec.pretrained,
            revision=revision,
            trust_remote_code=trust,
            **({"gguf_file": args["gguf_file"]} if args.get("gguf_file") else {}),
        )
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust, "dtype": args.get("dtype", "auto")}
        for key in ("attn_implementation", "gguf_file"):
            if args.get(key):
                kwargs[key] = args[key]
        try:
            self.model = AutoModelForCausalLM.from_pretrained(spec.pretrained, **kwargs)
        except (OSError, ValueError) as exc:
            raise KarmaError(f"cannot load model {spec.pretrained}: {str(exc).splitlines()[0]}") from exc
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        limit = args.get("max_length") or getattr(self.model.config, "max_position_embeddings", None)
        self.max_length = int(limit) if limit else None

    def generate(
        self,
        prompts: Sequence[Sequence[dict[str, str]]],
        *,
        seed: int,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[dict[str, Any]]:
        """One ``{response, prompt_tokens, new_tokens, chat_template}`` per prompt, in order."""
        import torch
        from transformers import GenerationConfig

        settings = self.spec.settings
        rendered = [render(self.tokenizer, m) for m in prompts]
        keep = None if self.max_length is None else max(1, self.max_length - settings.max_new_tokens)
        ids = [r[0][-keep:] if keep else r[0] for r in rendered]
        sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=sorted(self.eos_ids) or None,
            **sampling,
        )
        order = sorted(range(len(ids)), key=lambda i: (-len(ids[i]), i))
        out: list[dict[str, Any] | None] = [None] * len(ids)
        torch.manual_seed(seed)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            enc = self.tokenizer.pad({"input_ids": [ids[i] for i in batch]}, return_tensors="pt").to(self.device)
            with torch.no_grad():
                gen = self.model.generate(**enc, generation_config=config)
            width = enc["input_ids"].shape[1]
            new_total = 0
            for row, i in enumerate(batch):
                tokens = gen[row, width:].tolist()
                n = next((k + 1 for k, t in enumerate(tokens) if t in self.eos_ids), len(tokens))
                new_total += n
                out[i] = {
                    "response": str(self.tokenizer.decode(tokens[:n], skip_special_tokens=True)).strip(),
                    "prompt_tokens": len(ids[i]),
                    "new_tokens": n,
                    "chat_template": rendered[i][1],
                }
            if on_batch is not None:
                on_batch(len(batch), new_total)
        return [o for o in out if o is not None]

    def close(self) -> None:
        import gc

        del self.model
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - freeing memory is best effort
            pass


def dist_state(device: str | None = None) -> Any:
    """accelerate's ``PartialState`` under a multi-process launch (``accelerate launch``, ``torchrun``), else None.

    Without a GPU (or with ``--device cpu``) the processes join over gloo: accelerate's default
    ``PartialState()`` ignores a CPU launch and would leave every process doing all the work.
    """
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    from accelerate import PartialState

    cpu = (device or "").startswith("cpu") or not torch.cuda.is_available()
    state = PartialState(cpu=True) if cpu else PartialState()
    if state.num_processes != world:
        raise KarmaError(
            f"launched with WORLD_SIZE={world} but accelerate sees {state.num_processes} process(es); "
            "run karma generate under `accelerate launch` or `torchrun`"
        )
    return state


def share(items: list[Any], state: Any) -> list[Any]:
    """This process's share of ``items`` (all of them without a launcher)."""
    if state is None:
        return list(items)
    with state.split_between_processes(items) as mine:
        return list(mine)
