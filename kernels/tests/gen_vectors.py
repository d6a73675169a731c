"""Generate kernels/tests/aq_vectors.h: kernel test vectors with NumPy-computed expectations.

    python kernels/tests/gen_vectors.py      (rewrites aq_vectors.h next to this script)

Only NumPy is used (no autoq import), so the expectations are independent of the C code. The
C test program (aq_test_main.c) runs every variant of aq_variants.inc on every vector of its
kind, on the host, on aarch64 (qemu-aarch64) and on the Cortex-M4 (qemu-system-arm), so the
shapes are small enough for 256 KB of flash. Integer kinds must match exactly; float kinds
within `tol` = 1e-4 * max(sum |x||w|) + 1e-5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

KIND = {"f32": "AQ_F32", "lut": "AQ_LUT", "shift": "AQ_SHIFT", "xnor": "AQ_XNOR", "and": "AQ_AND", "int8": "AQ_INT8"}
# (kind, bits, per_channel_codebook, c_in, (kh, kw), stride, padding, h, w, c_out)
CASES = [
    ("f32", 32, 0, 3, (3, 3), 1, "same", 5, 5, 5),
    ("f32", 32, 0, 33, (2, 2), 2, "valid", 6, 5, 17),
    ("lut", 1, 0, 3, (3, 3), 1, "valid", 6, 6, 4),
    ("lut", 2, 1, 31, (3, 3), 2, "same", 5, 5, 3),
    ("lut", 4, 0, 5, (1, 1), 1, "same", 4, 3, 6),
    ("lut", 8, 1, 3, (5, 5), 1, "same", 5, 5, 2),
    ("shift", 2, 0, 7, (3, 3), 1, "same", 5, 5, 6),
    ("xnor", 1, 0, 65, (3, 3), 1, "same", 4, 4, 9),
    ("xnor", 1, 0, 1, (2, 2), 2, "valid", 5, 5, 3),
    ("and", 1, 0, 33, (3, 3), 1, "same", 5, 4, 8),
    ("and", 1, 0, 64, (1, 3), 2, "same", 3, 7, 5),
    ("int8", 8, 0, 3, (3, 3), 1, "same", 5, 5, 5),
    ("int8", 8, 0, 31, (2, 2), 2, "valid", 6, 5, 17),
    # f32 whole window (the opt kernel's dot-product path): a dense layer, a conv as large as its input
    ("f32", 32, 0, 70, (1, 1), 1, "valid", 1, 1, 11),
    ("f32", 32, 0, 6, (5, 5), 1, "valid", 5, 5, 7),
]


def geometry(h, w, kh, kw, s, padding):
    if padding == "valid":
        return (h - kh) // s + 1, (w - kw) // s + 1, 0, 0
    oh, ow = -(-h // s), -(-w // s)
    return oh, ow, max((oh - 1) * s + kh - h, 0) // 2, max((ow - 1) * s + kw - w, 0) // 2


def conv(x, w, s, padding):
    h, wd, _ = x.shape
    co, kh, kw, _ = w.shape
    oh, ow, pt, pl = geometry(h, wd, kh, kw, s, padding)
    xp = np.pad(x, ((pt, max(0, (oh - 1) * s + kh - h - pt)), (pl, max(0, (ow - 1) * s + kw - wd - pl)), (0, 0)))
    out = np.zeros((oh, ow, co))
    for ky in range(kh):
        for kx in range(kw):
            out += xp[ky:ky + s * (oh - 1) + 1:s, kx:kx + s * (ow - 1) + 1:s, :] @ w[:, ky, kx, :].T
    return out


def pack_bits(b):  # (..., c) {0,1} -> (..., words) uint64, channel ci at bit ci % 64 of word ci // 64
    c = b.shape[-1]
    nw = (c + 63) // 64
    out = np.zeros(b.shape[:-1] + (nw,), dtype=np.uint64)
    for ci in range(c):
        out[..., ci // 64] |= b[..., ci].astype(np.uint64) << np.uint64(ci % 64)
    return out


def pack_indices(idx, bits):  # (n, ...) -> (n, ceil(K*bits/8)), index j at bits*(j % q) of byte j // q
    n = idx.shape[0]
    flat = idx.reshape(n, -1).astype(np.int64)
    q = 8 // bits
    out = np.zeros((n, (flat.shape[1] * bits + 7) // 8), dtype=np.uint8)
    for j in range(flat.shape[1]):
        out[:, j // q] |= (flat[:, j] << (bits * (j % q))).astype(np.uint8)
    return out


def c_array(ctype, name, a):
    a = np.asarray(a).ravel()
    if ctype == "uint64_t":
        vals = [f"0x{int(v):016x}ULL" for v in a]
    elif ctype == "float":
        vals = [f"{float(v)!r}f" if np.isfinite(v) else "0.0f" for v in a.astype(np.float32)]
        vals = [v.replace("inf", "0") for v in vals]
    else:
        vals = [str(int(v)) for v in a]
    body = ",\n    ".join(", ".join(vals[i:i + 8]) for i in range(0, len(vals), 8))
    return f"static const {ctype} {name}[{max(len(vals), 1)}] = {{\n    {body}}};\n"


def make_case(i, case, rng):
    kind, bits, pcb, c_in, (kh, kw), s, padding, h, wd, co = case
    scale = rng.uniform(0.5, 2, co).astype(np.float32)
    bias = rng.uniform(-1, 1, co).astype(np.float32)
    arrays, fields = [], {}
    xz = yz = 0
    if kind in ("xnor", "and"):
        xb = rng.integers(0, 2, (h, wd, c_in))
        wb = rng.integers(0, 2, (co, kh, kw, c_in))
        xv = xb if kind == "and" else 2.0 * xb - 1
        acc = conv(xv.astype(np.float64), 2.0 * wb - 1, s, padding)
        want = acc.astype(np.float32) * scale + bias
        arrays += [("uint64_t", "x", pack_bits(xb)), ("uint64_t", "w", pack_bits(wb))]
        tol = 0.0
    elif kind == "int8":
        x = rng.integers(-128, 128, (h, wd, c_in))
        w = rng.integers(-128, 128, (co, kh, kw, c_in))
        xz, yz = int(rng.integers(-20, 20)), int(rng.integers(-10, 10))
        scale = (scale / 4096).astype(np.float32)
        acc = conv((x - xz).astype(np.float64), w.astype(np.float64), s, padding)
        want = np.clip(np.rint(acc.astype(np.int32).astype(np.float32) * scale + bias) + yz, -128, 127)
        arrays += [("int8_t", "x", x), ("int8_t", "w", w)]
        tol = 0.0
    else:
        x = rng.standard_normal((h, wd, c_in)).astype(np.float32)
        if kind == "f32":
            wv = rng.standard_normal((co, kh, kw, c_in)).astype(np.float32)
            arrays.append(("float", "w", wv))
            m = np.ones(co)
        else:
            levels = 1 << bits
            idx = rng.integers(0, 3 if kind == "shift" else levels, (co, kh, kw, c_in))
            arrays.append(("uint8_t", "w", pack_indices(idx, bits)))
            m = np.ones(co)
            if kind == "shift":
                sh = rng.integers(-2, 5, co)
                arrays.append(("int8_t", "shift", sh))
                wv = idx - 1.0
                m = 2.0 ** -sh
            else:
                cb = rng.standard_normal((co, levels) if pcb else (levels,)).astype(np.float32)
                arrays.append(("float", "codebook", cb))
                wv = cb[np.arange(co)[:, None, None, None], idx] if pcb else cb[idx]
        arrays.append(("float", "x", x))
        acc = conv(x.astype(np.float64), np.asarray(wv, np.float64), s, padding) * m
        want = acc * scale + bias
        bound = conv(np.abs(x).astype(np.float64), np.abs(np.asarray(wv, np.float64)), s, padding) * m * scale
        tol = float(1e-4 * bound.max() + 1e-5)
    arrays += [("float", "scale", scale), ("float", "bias", bias)]
    ytype = "int8_t" if kind == "int8" else "float"
    arrays.append((ytype, "y", want))
    names = {n: f"v{i}_{n}" for _, n, _ in arrays}
    text = "".join(c_array(t, names[n], a) for t, n, a in arrays)
    struct = (f"    {{\"{kind}-{bits}b-cin{c_in}-k{kh}x{kw}-s{s}-{padding}\", {KIND[kind]}, {h}, {wd}, {c_in}, {co}, "
              f"{kh}, {kw}, {s}, AQ_PAD_{padding.upper()}, {bits if kind in ('lut', 'shift') else 0}, {pcb}, "
              f"{names['x']}, {names['w']}, {names.get('codebook', '0')}, {names.get('shift', '0')}, {xz}, {yz}, "
              f"{names['scale']}, {names['bias']}, {names['y']}, {tol!r}f}},\n")
    return text, struct


def main() -> None:
    rng = np.random.default_rng(20261123)
    parts, structs = [], []
    for i, case in enumerate(CASES):
        text, struct = make_case(i, case, rng)
        parts.append(text)
        structs.append(struct)
    header = (
        "/* GENERATED by kernels/tests/gen_vectors.py (NumPy reference) -- do not edit by hand.\n"
        " * Kernel test vectors: inputs in the layouts of autoq_kernels.h and expected outputs. */\n"
        "#ifndef AQ_VECTORS_H\n#define AQ_VECTORS_H\n#include \"autoq_kernels.h\"\n\n"
        "typedef struct {\n    const char *name;\n    aq_kind kind;\n"
        "    int h, w, c_in, c_out, kh, kw, stride, padding, bits, codebook_per_channel;\n"
        "    const void *x_data, *w_data;\n    const float *codebook;\n    const int8_t *shift;\n"
        "    int32_t x_zero_point, y_zero_point;\n    const float *scale, *bias;\n"
        "    const void *y; /* expected: float, or int8_t for int8 */\n"
        "    float tol;     /* 0: exact */\n} aq_vector;\n\n")
    out = header + "".join(parts) + "\nstatic const aq_vector aq_vectors[] = {\n" + "".join(structs) + \
        "};\nstatic const int aq_num_vectors = (int)(sizeof(aq_vectors) / sizeof(aq_vectors[0]));\n#endif\n"
    path = Path(__file__).with_name("aq_vectors.h")
    path.write_text(out)
    print(f"wrote {path} ({len(CASES)} vectors, {len(out)} bytes)")


if __name__ == "__main__":
    main()
