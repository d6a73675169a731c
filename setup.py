"""Build of the C extension autoq._kernels (the kernels in kernels/ + the binding).

All other metadata lives in pyproject.toml. The extension is compiled at install time
(`pip install .`, `pip install -e .`); nothing is compiled when autoq runs.

x86-64: baseline -march=x86-64-v2 (SSE4.2 + POPCNT, every x86-64 CPU since ~2009) with
AQ_X86_DISPATCH, which adds AVX2 and AVX-512 copies of the hot loops chosen at run time from
the CPU, so a wheel built here also runs on older x86-64 machines.
"""
import platform
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
DEPENDS = sorted(glob("kernels/include/*") + glob("kernels/src/*.h") + glob("kernels/src/*.inc"))

compile_args = ["-std=c99", "-O3", "-Wno-psabi", "-fno-strict-aliasing"]
macros = []
if platform.machine().lower() in ("x86_64", "amd64"):
    compile_args.append("-march=x86-64-v2")
    macros.append(("AQ_X86_DISPATCH", "1"))

setup(
    ext_modules=[
        Extension(
            "autoq._kernels",
            sources=KERNEL_SOURCES,
            depends=DEPENDS,
            include_dirs=["kernels/include", "kernels/src"],
            define_macros=macros,
            extra_compile_args=compile_args,
            libraries=["m"],
        )
    ]
)
