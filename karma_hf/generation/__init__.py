"""``karma generate``: responses of a pool of origin models to a prompt set (:mod:`karma_hf.generation.run`).

:mod:`~karma_hf.generation.config` (the pool and decoding settings), :mod:`~karma_hf.generation.prompts`
(prompts from any ``datasets`` source), :mod:`~karma_hf.generation.shards` (the sharded, resumable
output folder in the common multi-model schema), :mod:`~karma_hf.generation.hf_backend` (transformers,
batched, CPU / GPU, ``accelerate launch``) and :mod:`~karma_hf.generation.vllm_backend` (vLLM, tensor /
data parallel). Torch, transformers and vLLM are imported only when a model loads.
"""
