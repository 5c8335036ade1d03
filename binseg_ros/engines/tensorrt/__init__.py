"""TensorRT plans built from the engine folder's ONNX graphs (``binseg build`` and the tensorrt
backend), on the target GPU or, with TensorRT-RTX, ahead of time for its compute capability;
one concern per module:

- :mod:`.targets`: the two TensorRT flavours (``tensorrt``, ``tensorrt_rtx``), what each can
  do, and what a plan is built for (a GPU, or a compute capability ahead of time).
- :mod:`.rules`: what needs no TensorRT (precisions, builder settings per flavour and
  generation, graphs a flavour cannot take, kernel or matmul graph), so it runs on any machine.
- :mod:`.imports`: the TensorRT flavour and cuda-python imported only when used, CUDA return
  codes, the device, and the check that this machine can build for a target at all.
- :mod:`.plan_cache`: which cached plan may be reused, and where the cache lives.
- :mod:`.timing_cache`: the builder's kernel timings, shared and merged under a file lock.
- :mod:`.progress`: tqdm bars for the builder's phases.
- :mod:`.builder`: one ONNX graph to one plan.
- :mod:`.plugin_library`: the frequency-branch plugin, found or built, loaded once.
- :mod:`.loading`: a subset's engine from the cache or a build, and every subset of a folder.

Importing any of them imports no TensorRT and no cuda-python, so the node, the CLI and
the tests import them on machines without a GPU; nothing here prints (the CLI does).
"""

from __future__ import annotations
