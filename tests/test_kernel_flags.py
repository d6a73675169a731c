"""The kernels are built with the flags of kernels/flags.mk everywhere: in the extension that
calibration measures (read back from the artefact's DWARF producer records) and in the exported
Makefile; no -fwrapv in either (Python's CFLAGS carry it into extension builds)."""
import re
import subprocess
from pathlib import Path

from autoq import _kernels
from autoq.export import c_emit
from autoq.kernel_flags import host_cflags, is_x86_64, kernel_flags, read_flags
from autoq.resources import resource_dir


def test_read_flags_parses_make_assignments(tmp_path):
    mk = tmp_path / "f.mk"
    mk.write_text("# c\nA_B = -O3 -x \\\n  -y  # tail\nC ?= -z\nnot a flag\n")
    assert read_flags(mk) == {"A_B": ["-O3", "-x", "-y"], "C": ["-z"]}


def test_extension_built_with_the_kernel_flags():
    out = subprocess.run(["readelf", "--debug-dump=info", _kernels.__file__], capture_output=True, text=True,
                         check=True).stdout
    producers = set(re.findall(r"DW_AT_producer\s*:.*?: (GNU C.*)", out))
    assert producers, "extension built without -g: cannot read its compiler flags"
    wanted = [f for f in host_cflags(kernel_flags()) if not f.startswith(("-D", "-W"))]
    for producer in producers:
        switches = producer.split()
        assert "-fwrapv" not in switches, producer
        assert all(f in switches for f in wanted), (wanted, producer)


def test_exported_makefile_uses_the_kernel_flags(tmp_path):
    c_emit.copy_kernels(resource_dir("kernels"), tmp_path)
    c_emit.write_makefile(tmp_path)
    for name in ("model.c", "model.h", "main.c"):
        (tmp_path / name).write_text("")
    cmd = subprocess.run(["make", "-n", "host"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    switches = cmd.split()
    assert "-fwrapv" not in switches and "-O3" in switches
    assert all(f in switches for f in host_cflags(kernel_flags())), cmd
    if is_x86_64():
        assert "-DAQ_X86_DISPATCH=1" in switches and "-march=x86-64-v2" in switches
    assert c_emit.HOST_CFLAGS[:len(host_cflags(kernel_flags()))] == host_cflags(kernel_flags())
    assert (tmp_path / "kernels" / "flags.mk").read_text() == (Path(resource_dir("kernels")) / "flags.mk").read_text()
