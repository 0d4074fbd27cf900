"""Test-session set-up.

Without a CUDA GPU, Triton kernels run only in Triton's interpreter, which is
switched on by TRITON_INTERPRET=1 before the kernel module is imported
(vtalign imports it lazily, at the first use of the triton backend).
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
