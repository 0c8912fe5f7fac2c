"""``karma run PIPELINE.yaml``: the whole KARMA method from one file.

:mod:`karma_hf.pipeline.config` parses and checks the file (:class:`PipelineConfig`),
:mod:`karma_hf.pipeline.state` reads and writes the per-stage state files (configuration hashes),
:mod:`karma_hf.pipeline.stages` holds what each stage does (calls into the library), and
:mod:`karma_hf.pipeline.run` plans the stages (run or skip, and why) and runs them.
"""
