"""Build of the C extension autoq._kernels (the kernels in kernels/ + the binding).

All other metadata lives in pyproject.toml. The extension is compiled at install time
(`pip install .`, `pip install -e .`); nothing is compiled when autoq runs.

Compiler flags: kernels/flags.mk (autoq/kernel_flags.py), the same file the exported Makefile
and the export's builds read. x86-64: baseline -march=x86-64-v2 (SSE4.2 + POPCNT, every x86-64
CPU since ~2009) with AQ_X86_DISPATCH, which adds AVX2 and AVX-512 copies of the hot loops
chosen at run time from the CPU, so a wheel built here also runs on older x86-64 machines.
-fno-wrapv undoes the -fwrapv that Python's own CFLAGS put first on the command line.
"""
import importlib.util
from glob import glob

from setuptools import Extension, setup

KERNEL_SOURCES = sorted(glob("kernels/src/conv_*.c")) + [
    "kernels/src/aq_common.c",
    "kernels/src/aq_f32_core.c",
    "kernels/src/aq_bin_narrow.c",
    "kernels/src/aq_bench.c",
    "kernels/python/aq_pymodule.c",
]

# headers and included templates: a change to them must rebuild the extension too
DEPENDS = sorted(glob("kernels/include/*") + glob("kernels/src/*.h") + glob("kernels/src/*.inc")) + ["kernels/flags.mk"]

_spec = importlib.util.spec_from_file_location("kernel_flags", "autoq/kernel_flags.py")
kernel_flags = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_flags)
# extra_compile_args come after Python's CFLAGS, so these win (-O3, -fno-wrapv)
compile_args = kernel_flags.host_cflags(kernel_flags.read_flags("kernels/flags.mk"))

setup(
    ext_modules=[
        Extension(
            "autoq._kernels",
            sources=KERNEL_SOURCES,
            depends=DEPENDS,
            include_dirs=["kernels/include", "kernels/src"],
            extra_compile_args=compile_args,
            libraries=["m"],
        )
    ]
)
