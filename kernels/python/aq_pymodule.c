/* autoq._kernels: CPython binding of the C kernels (built by setup.py at install time).
 *
 * Thin on purpose: buffers in, return code out. autoq/kernels.py does the NumPy-level work
 * (dtype and shape checks, packing, allocation); this module re-checks every buffer size
 * against the geometry before calling a kernel, and releases the GIL while kernels run. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "autoq_kernels.h"

static int geom_from(aq_geom *g, int h, int w, int c_in, int c_out, int k_h, int k_w, int stride,
                     int padding) {
    int rc = aq_geom_init(g, h, w, c_in, c_out, k_h, k_w, stride, padding);
    if (rc) PyErr_Format(PyExc_ValueError, "invalid conv geometry (%s): h=%d w=%d c_in=%d c_out=%d "
                         "kernel=%dx%d stride=%d padding=%s", rc == AQ_E_GEOM ? "kernel larger than "
                         "the input with valid padding" : "sizes and stride must be >= 1", h, w, c_in,
                         c_out, k_h, k_w, stride, padding == AQ_PAD_SAME ? "same" : padding == AQ_PAD_VALID ? "valid" : "?");
    return rc;
}

static int need(Py_buffer *b, Py_ssize_t n, const char *what) {
    if (b->len < n) {
        PyErr_Format(PyExc_ValueError, "%s buffer has %zd bytes, the geometry needs %zd", what, b->len, n);
        return -1;
    }
    return 0;
}

/* variants() -> list of (kind, variant) in aq_variants.inc order */
static PyObject *py_variants(PyObject *self, PyObject *args) {
    PyObject *out = PyList_New(aq_num_variants);
    int i;
    if (!out) return NULL;
    for (i = 0; i < aq_num_variants; i++)
        PyList_SET_ITEM(out, i, Py_BuildValue("(ss)", aq_variants[i].kind_name, aq_variants[i].variant));
    return out;
}

/* geometry(h, w, c_in, c_out, kh, kw, stride, padding) -> (out_h, out_w, pad_top, pad_left) */
static PyObject *py_geometry(PyObject *self, PyObject *args) {
    int h, w, ci, co, kh, kw, s, p;
    aq_geom g;
    if (!PyArg_ParseTuple(args, "iiiiiiii", &h, &w, &ci, &co, &kh, &kw, &s, &p)) return NULL;
    if (geom_from(&g, h, w, ci, co, kh, kw, s, p)) return NULL;
    return Py_BuildValue("(iiii)", g.out_h, g.out_w, g.pad_top, g.pad_left);
}

/* conv(vi, x, w, y, geom8, bits, cb_per_channel, codebook|None, shift|None, x_zp, y_zp,
        scale|None, bias|None[, y_float]) -> None (raises on a non-zero return code) */
static PyObject *py_conv(PyObject *self, PyObject *args) {
    int vi, h, w, ci, co, kh, kw, s, p, bits, cbpc, xzp, yzp, yfl = 0, rc;
    Py_buffer xb = {0}, wb = {0}, yb = {0}, cbb = {0}, shb = {0}, scb = {0}, bib = {0};
    PyObject *cbo, *sho, *sco, *bio, *ret = NULL;
    aq_conv_args a;
    const aq_variant_info *v;
    Py_ssize_t px, nw, k, xbytes, wbytes, ybytes;
    void *scratch = NULL;
    if (!PyArg_ParseTuple(args, "iy*y*w*(iiiiiiii)iiOOiiOO|i", &vi, &xb, &wb, &yb, &h, &w, &ci, &co,
                          &kh, &kw, &s, &p, &bits, &cbpc, &cbo, &sho, &xzp, &yzp, &sco, &bio, &yfl))
        return NULL;
    memset(&a, 0, sizeof a);
    if (vi < 0 || vi >= aq_num_variants) {
        PyErr_Format(PyExc_ValueError, "variant index %d out of range", vi);
        goto done;
    }
    v = &aq_variants[vi];
    if (geom_from(&a.g, h, w, ci, co, kh, kw, s, p)) goto done;
    if (cbo != Py_None && PyObject_GetBuffer(cbo, &cbb, PyBUF_SIMPLE)) goto done;
    if (sho != Py_None && PyObject_GetBuffer(sho, &shb, PyBUF_SIMPLE)) goto done;
    if (sco != Py_None && PyObject_GetBuffer(sco, &scb, PyBUF_SIMPLE)) goto done;
    if (bio != Py_None && PyObject_GetBuffer(bio, &bib, PyBUF_SIMPLE)) goto done;
    px = (Py_ssize_t)h * w;
    nw = aq_words(ci);
    k = (Py_ssize_t)kh * kw * ci;
    switch (v->kind) {
    case AQ_XNOR: case AQ_AND: xbytes = px * nw * 8; wbytes = (Py_ssize_t)co * kh * kw * nw * 8; break;
    case AQ_INT8: xbytes = px * ci; wbytes = (Py_ssize_t)aq_int8_packed_bytes(&a.g); break; /* packed */
    case AQ_LUT: case AQ_SHIFT:
        if (bits != 1 && bits != 2 && bits != 4 && bits != 8) {
            PyErr_Format(PyExc_ValueError, "bits must be 1, 2, 4 or 8, got %d", bits);
            goto done;
        }
        xbytes = px * ci * 4; wbytes = (Py_ssize_t)co * aq_index_row_bytes(k, bits); break;
    default: xbytes = px * ci * 4; wbytes = (Py_ssize_t)co * k * 4; break;
    }
    ybytes = (Py_ssize_t)a.g.out_h * a.g.out_w * co * (v->kind == AQ_INT8 && !yfl ? 1 : 4);
    if (need(&xb, xbytes, "x") || need(&wb, wbytes, "w") || need(&yb, ybytes, "y")) goto done;
    if (v->kind == AQ_LUT && need(&cbb, (Py_ssize_t)4 * (1 << bits) * (cbpc ? co : 1), "codebook")) goto done;
    if (v->kind == AQ_SHIFT && need(&shb, co, "shift")) goto done;
    if (scb.buf && need(&scb, (Py_ssize_t)4 * co, "scale")) goto done;
    if (bib.buf && need(&bib, (Py_ssize_t)4 * co, "bias")) goto done;
    a.x = xb.buf; a.w = wb.buf; a.y = yb.buf;
    a.bits = bits; a.codebook_per_channel = cbpc;
    a.codebook = (const float *)cbb.buf; a.shift = (const int8_t *)shb.buf;
    a.x_zero_point = xzp; a.y_zero_point = yzp; a.y_float = yfl;
    a.scale = (const float *)scb.buf; a.bias = (const float *)bib.buf;
    a.scratch_bytes = aq_scratch_bytes(v->kind, v->variant, &a.g);
    if (a.scratch_bytes) {
        scratch = PyMem_RawMalloc(a.scratch_bytes);
        if (!scratch) { PyErr_NoMemory(); goto done; }
        a.scratch = scratch;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = v->fn(&a);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyErr_Format(PyExc_ValueError, "kernel %s/%s returned error code %d", v->kind_name, v->variant, rc);
        goto done;
    }
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyMem_RawFree(scratch);
    PyBuffer_Release(&xb); PyBuffer_Release(&wb); PyBuffer_Release(&yb);
    if (cbb.obj) PyBuffer_Release(&cbb);
    if (shb.obj) PyBuffer_Release(&shb);
    if (scb.obj) PyBuffer_Release(&scb);
    if (bib.obj) PyBuffer_Release(&bib);
    return ret;
}

/* pack_bits(x float32, n, c, threshold, out uint64) */
static PyObject *py_pack_bits(PyObject *self, PyObject *args) {
    Py_buffer xb, ob;
    Py_ssize_t n;
    int c;
    float thr;
    PyObject *ret = NULL;
    if (!PyArg_ParseTuple(args, "y*nifw*", &xb, &n, &c, &thr, &ob)) return NULL;
    if (c < 1 || n < 0) PyErr_SetString(PyExc_ValueError, "pack_bits: need c >= 1 and n >= 0");
    else if (!need(&xb, n * c * 4, "x") && !need(&ob, n * aq_words(c) * 8, "out")) {
        aq_pack_bits((const float *)xb.buf, (long)n, c, thr, (uint64_t *)ob.buf);
        Py_INCREF(Py_None);
        ret = Py_None;
    }
    PyBuffer_Release(&xb); PyBuffer_Release(&ob);
    return ret;
}

/* unpack_bits(p uint64, n, c, lo, hi, out float32) */
static PyObject *py_unpack_bits(PyObject *self, PyObject *args) {
    Py_buffer pb, ob;
    Py_ssize_t n;
    int c;
    float lo, hi;
    PyObject *ret = NULL;
    if (!PyArg_ParseTuple(args, "y*niffw*", &pb, &n, &c, &lo, &hi, &ob)) return NULL;
    if (c < 1 || n < 0) PyErr_SetString(PyExc_ValueError, "unpack_bits: need c >= 1 and n >= 0");
    else if (!need(&pb, n * aq_words(c) * 8, "packed") && !need(&ob, n * c * 4, "out")) {
        aq_unpack_bits((const uint64_t *)pb.buf, (long)n, c, lo, hi, (float *)ob.buf);
        Py_INCREF(Py_None);
        ret = Py_None;
    }
    PyBuffer_Release(&pb); PyBuffer_Release(&ob);
    return ret;
}

/* pack_indices(idx uint8, n, k, bits, out) / unpack_indices(p, n, k, bits, out) */
static PyObject *indices(PyObject *args, int pack) {
    Py_buffer ib, ob;
    Py_ssize_t n, k;
    int bits, rc;
    PyObject *ret = NULL;
    if (!PyArg_ParseTuple(args, "y*nniw*", &ib, &n, &k, &bits, &ob)) return NULL;
    if (bits != 1 && bits != 2 && bits != 4 && bits != 8) {
        PyErr_Format(PyExc_ValueError, "bits must be 1, 2, 4 or 8, got %d", bits);
    } else {
        Py_ssize_t packed = n * (Py_ssize_t)aq_index_row_bytes((long)k, bits), plain = n * k;
        if (!need(&ib, pack ? plain : packed, "input") && !need(&ob, pack ? packed : plain, "out")) {
            rc = pack ? aq_pack_indices((const uint8_t *)ib.buf, (long)n, (long)k, bits, (uint8_t *)ob.buf)
                      : aq_unpack_indices((const uint8_t *)ib.buf, (long)n, (long)k, bits, (uint8_t *)ob.buf);
            if (rc) PyErr_Format(PyExc_ValueError, "an index does not fit in %d bits", bits);
            else { Py_INCREF(Py_None); ret = Py_None; }
        }
    }
    PyBuffer_Release(&ib); PyBuffer_Release(&ob);
    return ret;
}
static PyObject *py_pack_indices(PyObject *self, PyObject *args) { return indices(args, 1); }
static PyObject *py_unpack_indices(PyObject *self, PyObject *args) { return indices(args, 0); }

/* int8_packed_bytes(h, w, c_in, c_out, kh, kw, stride, padding) -> bytes of aq_pack_int8's output */
static PyObject *py_int8_packed_bytes(PyObject *self, PyObject *args) {
    int h, w, ci, co, kh, kw, s, p;
    aq_geom g;
    if (!PyArg_ParseTuple(args, "iiiiiiii", &h, &w, &ci, &co, &kh, &kw, &s, &p)) return NULL;
    if (geom_from(&g, h, w, ci, co, kh, kw, s, p)) return NULL;
    return PyLong_FromSize_t(aq_int8_packed_bytes(&g));
}

/* pack_int8((h, w, c_in, c_out, kh, kw, stride, padding), w_ohwi, out) -> None */
static PyObject *py_pack_int8(PyObject *self, PyObject *args) {
    int h, w, ci, co, kh, kw, s, p;
    Py_buffer wb = {0}, ob = {0};
    PyObject *ret = NULL;
    aq_geom g;
    if (!PyArg_ParseTuple(args, "(iiiiiiii)y*w*", &h, &w, &ci, &co, &kh, &kw, &s, &p, &wb, &ob)) return NULL;
    if (geom_from(&g, h, w, ci, co, kh, kw, s, p)) goto done;
    if (need(&wb, (Py_ssize_t)co * kh * kw * ci, "w") || need(&ob, (Py_ssize_t)aq_int8_packed_bytes(&g), "out")) goto done;
    aq_pack_int8(&g, (const int8_t *)wb.buf, (int8_t *)ob.buf);
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyBuffer_Release(&wb);
    PyBuffer_Release(&ob);
    return ret;
}

/* bench(vi, bits, c_in, c_out, h, w, f, stride, padding, reps, warmup) -> (ns_median, ns_min, macs) */
static PyObject *py_bench(PyObject *self, PyObject *args) {
    int vi, bits, ci, co, h, w, f, s, p, reps, warmup, rc;
    double med = 0, mn = 0;
    long long macs = 0;
    if (!PyArg_ParseTuple(args, "iiiiiiiiiii", &vi, &bits, &ci, &co, &h, &w, &f, &s, &p, &reps, &warmup))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = aq_bench_case(vi, bits, ci, co, h, w, f, s, p, reps, warmup, &med, &mn, &macs);
    Py_END_ALLOW_THREADS
    if (rc) return PyErr_Format(PyExc_ValueError, "bench case failed with code %d", rc);
    return Py_BuildValue("(ddL)", med, mn, macs);
}

static PyObject *py_simd_level(PyObject *self, PyObject *args) {
    int cap = -1;
    if (!PyArg_ParseTuple(args, "|i", &cap)) return NULL;
    return PyLong_FromLong(cap >= 0 ? aq_set_simd_level(cap) : aq_simd_level());
}

static PyMethodDef methods[] = {
    {"variants", py_variants, METH_NOARGS, "[(kind, variant)] in aq_variants.inc order"},
    {"geometry", py_geometry, METH_VARARGS, "(out_h, out_w, pad_top, pad_left)"},
    {"conv", py_conv, METH_VARARGS, "run one kernel variant on buffers"},
    {"pack_bits", py_pack_bits, METH_VARARGS, "aq_pack_bits"},
    {"unpack_bits", py_unpack_bits, METH_VARARGS, "aq_unpack_bits"},
    {"pack_indices", py_pack_indices, METH_VARARGS, "aq_pack_indices"},
    {"unpack_indices", py_unpack_indices, METH_VARARGS, "aq_unpack_indices"},
    {"int8_packed_bytes", py_int8_packed_bytes, METH_VARARGS, "aq_int8_packed_bytes"},
    {"pack_int8", py_pack_int8, METH_VARARGS, "aq_pack_int8"},
    {"bench", py_bench, METH_VARARGS, "aq_bench_case: (ns_median, ns_min, macs)"},
    {"simd_level", py_simd_level, METH_VARARGS, "simd_level([cap]) -> level in use"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "autoq._kernels",
                                    "autoq C kernels (see kernels/include/autoq_kernels.h)", -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
