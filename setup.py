"""The compiled kernels (seglab.cluster._ckernels). Everything else is declared in pyproject.toml.

The extension is optional: where no C compiler is found the build goes on without it and seglab
runs the same kernels through numba (compiled on first use, then cached).
"""

import os
import sys

from setuptools import Extension, setup

GCC_LIKE = sys.platform != "win32"

extension = Extension(
    "seglab.cluster._ckernels",
    sources=["src/seglab/cluster/_ckernels.c"],
    depends=[
        "src/seglab/cluster/_ckernels_real.h",
        "src/seglab/cluster/_ckernels_meanshift.h",
        "src/seglab/cluster/_ckernels_avx512.h",
    ],
    # -ffp-contract=off: no fused multiply-add, so the results are the bits of the numba kernels;
    # -fno-math-errno lets sqrt vectorise (it changes no result)
    extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11"]
    if GCC_LIKE
    else ["/O2", "/fp:precise"],
    define_macros=[("SEGLAB_TARGET_CLONES", "1")] if GCC_LIKE else [],
    optional=os.environ.get("SEGLAB_REQUIRE_EXTENSION", "") != "1",
)

setup(ext_modules=[extension])
