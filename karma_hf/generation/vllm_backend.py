"""Generation with vLLM (``--model vllm``), written against vLLM's public API: ``vllm.LLM``,
``vllm.SamplingParams``, ``vllm.inputs.TokensPrompt``.

``model_args`` as lm-eval's ``vllm`` backend reads them: ``pretrained``, ``revision``, ``dtype``
(default ``auto``), ``tokenizer``, ``trust_remote_code``, ``tensor_parallel_size`` (GPUs per
model replica), ``data_parallel_size`` (replicas; each is a Ray actor holding
``tensor_parallel_size`` GPUs and takes an interleaved share of the prompts, as lm-eval does),
``gpu_memory_utilization``, ``max_model_len``, ``quantization``, ``seed``; any other key goes to
``vllm.LLM`` unchanged (lm-eval's behaviour).

Prompts are rendered by the model's tokenizer exactly as in the HF backend
(:func:`karma_hf.generation.hf_backend.render`: the chat template, or the plain prompt) and passed
as token ids. Temperature 0 is greedy; with sampling each prompt gets its own seed (from the
run's seed and the prompt id), so a resumed run draws the same samples whatever the batching.

Not measured in karma-hf's CI: vLLM cannot be installed on its CPU machines. Without vLLM,
``--model vllm`` stops before any work with one line saying what to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.generation.config import ModelSpec

INSTALL_HINT = "pip install vllm (Linux with a CUDA GPU; see https://docs.vllm.ai)"
_INT_KEYS = ("tensor_parallel_size", "data_parallel_size", "max_model_len", "seed", "max_num_seqs")
_FLOAT_KEYS = ("gpu_memory_utilization",)
_TRUE = {"1", "true", "yes", "on"}


def require_vllm() -> None:
    """KarmaError (one line, exit 2) when vLLM cannot be imported."""
    try:
        found = importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise KarmaError(f"--model vllm needs vLLM, which is not installed here: {INSTALL_HINT}")


def llm_kwargs(spec: ModelSpec) -> tuple[dict[str, Any], int]:
    """(``vllm.LLM`` keyword arguments, data_parallel_size) from the model_args."""
    args = dict(spec.args)
    kwargs: dict[str, Any] = {"model": args.pop("pretrained", None) or args.pop("model", None)}
    dp = int(args.pop("data_parallel_size", 1))
    for key in ("batch_size", "max_batch_size", "device", "add_bos_token"):  # lm-eval's, not vLLM's
        args.pop(key, None)
    if "max_length" in args:
        args["max_model_len"] = args.pop("max_length")
    kwargs["dtype"] = args.pop("dtype", "auto")
    kwargs["seed"] = spec.settings.seed
    for key, value in args.items():
        if key in _INT_KEYS:
            kwargs[key] = int(value)
        elif key in _FLOAT_KEYS:
            kwargs[key] = float(value)
        elif key == "trust_remote_code":
            kwargs[key] = str(value).lower() in _TRUE
        else:
            kwargs[key] = value
    return kwargs, dp


def prompt_seed(seed: int, prompt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[:4], "big")


def _distribute(n: int, items: list[Any]) -> list[list[Any]]:
    """Interleaved split (lm-eval's ``distribute``): item i goes to part i % n."""
    return [items[i::n] for i in range(n)]


def _undistribute(parts: list[list[Any]]) -> list[Any]:
    total = sum(len(p) for p in parts)
    return [parts[i % len(parts)][i // len(parts)] for i in range(total)]


class VLLMGenerator:
    """One vLLM engine (or ``data_parallel_size`` Ray replicas) for one model of the pool."""

    backend = "vllm"

    def __init__(self, spec: ModelSpec, **_: Any) -> None:
        require_vllm()
        from transformers import AutoTokenizer

        self.spec = spec
        self.kwargs, self.data_parallel = llm_kwargs(spec)
        trust = bool(self.kwargs.get("trust_remote_code", False))
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.kwargs.get("tokenizer") or self.kwargs["model"], revision=self.kwargs.get("revision"),
            trust_remote_code=trust,
        )  # fmt: skip
        self.llm = None
        if self.data_parallel <= 1:
            from vllm import LLM

            self.llm = LLM(**self.kwargs)

    def _params(self, prompt_ids: Sequence[str]) -> list[Any]:
        from vllm import SamplingParams

        s = self.spec.settings
        if not s.do_sample:
            return [SamplingParams(max_tokens=s.max_new_tokens, temperature=0.0) for _ in prompt_ids]
        return [
            SamplingParams(max_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                           seed=prompt_seed(s.seed, pid))
            for pid in prompt_ids
        ]  # fmt: skip

    def generate(
        self,
        prompts: Sequence[Sequence[dict[str, str]]],
        *,
        seed: int,
        prompt_ids: Sequence[str] = (),
        on_batch: Callable[[int, int], None] | None = None,
    ) -> list[dict[str, Any]]:
        from vllm.inputs import TokensPrompt

        from karma_hf.generation.hf_backend import render

        rendered = [render(self.tokenizer, m) for m in prompts]
        ids = list(prompt_ids) or [str(i) for i in range(len(prompts))]
        requests = [TokensPrompt(prompt_token_ids=r[0]) for r in rendered]
        params = self._params(ids)
        if self.llm is not None:
            outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        else:
            outputs = self._generate_data_parallel(requests, params)
        out = []
        new_total = 0
        for r, o in zip(rendered, outputs, strict=True):
            comp = o.outputs[0]
            new_total += len(comp.token_ids)
            out.append(
                {
                    "response": comp.text.strip(),
                    "prompt_tokens": len(r[0]),
                    "new_tokens": len(comp.token_ids),
                    "chat_template": r[1],
                }
            )
        if on_batch is not None:
            on_batch(len(out), new_total)
        return out

    def _generate_data_parallel(self, requests: list[Any], params: list[Any]) -> list[Any]:
        """``data_parallel_size`` Ray actors of ``tensor_parallel_size`` GPUs each (lm-eval's scheme)."""
        if importlib.util.find_spec("ray") is None:
            raise KarmaError("data_parallel_size > 1 needs Ray: pip install ray")
        import ray

        tp = int(self.kwargs.get("tensor_parallel_size", 1))

        @ray.remote(num_gpus=tp)
        def replica(kwargs: dict, reqs: list, sps: list):  # pragma: no cover - needs GPUs
            import os

            from vllm import LLM

            for key in ("VLLM_DP_RANK", "VLLM_DP_RANK_LOCAL", "VLLM_DP_SIZE", "VLLM_DP_MASTER_IP",
                        "VLLM_DP_MASTER_PORT"):  # fmt: skip
                os.environ.pop(key, None)
            kwargs = {k: v for k, v in kwargs.items() if k != "distributed_executor_backend"}
            return LLM(**kwargs).generate(reqs, sampling_params=sps, use_tqdm=False)

        parts = _distribute(self.data_parallel, requests)
        sps = _distribute(self.data_parallel, params)
        refs = [replica.remote(self.kwargs, r, s) if r else None for r, s in zip(parts, sps, strict=True)]
        results = [ray.get(ref) if ref is not None else [] for ref in refs]
        ray.shutdown()
        return _undistribute(results)

    def close(self) -> None:
        self.llm = None
        import gc

        gc.collect()
