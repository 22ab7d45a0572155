/* seglab.cluster._ckernels: the k-means kernels, the region flood fill and the colour mean-shift,
 * compiled when the package is built (setup.py), so that the clustering needs no compiler at run
 * time and no numba at all: the first run is as fast as the hundredth.
 *
 * Every function takes the same arguments as the numba kernel of the same name (_kmeans_numba.py,
 * _region_numba.py; _modes3 takes the kernel id and speed-up that numba bakes into its entry
 * points of _meanshift_image_numba.py): numpy arrays (read through the buffer protocol, checked
 * for dimensions, type and contiguity), numbers, and the range of chunks [c_lo, c_hi) to work on.
 * Same results as numba's (tests/test_kernel_backends.py), not always the same loops: the
 * Hamerly step recomputes runs of whole vectors in place where numba gathers sparse points, and
 * on CPUs with AVX-512 runs a kernel of its own (_ckernels_avx512.h, checked against these loops).
 * The work runs without the GIL, so seglab._threads runs ranges on several threads at once.
 * Where GCC or Clang can, the hot functions are compiled for AVX-512, AVX2 and plain x86-64,
 * picked when the module loads (target_clones), so one build is fast on every x86-64 CPU. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 16384 /* points per parallel task, as _kmeans_kernels.CHUNK */
#define BLOCK 512   /* points per vectorised block, as _kmeans_kernels.BLOCK */
#define LANES 16    /* points per register-blocked vector in nearest_two_fixed (a multiple of 8) */
#define MAX_FIXED_D 8

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)0)
#endif

#if defined(SEGLAB_TARGET_CLONES) && defined(__x86_64__) && defined(__linux__)
#define SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SIMD_CLONES
#endif

static ALWAYS_INLINE double close_bound(double d2, double root, double R, double A)
{
    /* bound on the error of a computed squared distance d2 (_kmeans_kernels.error_terms), given
     * root >= sqrt(d2): a larger bound only sends more points to the float64 recomputation */
    return R * d2 + A * root + A * A;
}

/* a correctly rounded float32 square root is within half an ulp (2**-24 relative) of the true
 * root: times 1 +- 2**-22 it is a bound from above or below, with room for the float64 products.
 * Float32 data take their roots in float32 (a quarter of the time of float64's). */
#define SQRT_MARGIN 2.384185791015625e-07
#define ROOT_ABOVE_F32(x) ((double)sqrtf(x) * (1.0 + SQRT_MARGIN))
#define ROOT_BELOW_F32(x) ((double)sqrtf(x) * (1.0 - SQRT_MARGIN))

static ALWAYS_INLINE int any_flag(const uint8_t *flag, Py_ssize_t from, Py_ssize_t m)
{
    /* whether one of flag[from : from + LANES] (cut at m) is set */
    if (from + LANES <= m) { /* a whole vector: 8-byte words, not LANES byte tests */
        uint64_t any = 0, word;
        for (int q = 0; q < LANES; q += 8) {
            memcpy(&word, flag + from + q, 8);
            any |= word;
        }
        return any != 0;
    }
    int any = 0;
    Py_ssize_t to = from + LANES < m ? from + LANES : m;
    for (Py_ssize_t q = from; q < to; q++)
        any |= flag[q];
    return any;
}

static ALWAYS_INLINE double block_total(const double *acc)
{
    /* a chunk's inertia from its per-lane sums, added in lane order (as the numba kernels) */
    double total = 0.0;
    for (int q = 0; q < BLOCK; q++)
        total += acc[q];
    return total;
}

static float float_at_least(double x)
{
    /* the smallest float32 >= x, so that (float key < it) == (key < x) for every float key */
    float f = (float)x;
    return (double)f < x ? nextafterf(f, INFINITY) : f;
}

static ALWAYS_INLINE float round_down(double x)
{
    /* a float32 <= x: widening by 2**-22 first survives rounding to nearest */
    return (float)(x - fabs(x) * 2.384185791015625e-07);
}

/* defined with the float32 loops (_ckernels_real.h), used by the AVX-512 kernel too */
static inline int32_t exact_nearest_f32(const float *restrict src, Py_ssize_t stride,
                                        Py_ssize_t i, const double *restrict c64, int k, int d);

#include "_ckernels_avx512.h"

#define REAL float
#define SFX(name) name##_f32
#define ROOT_ABOVE ROOT_ABOVE_F32
#define ROOT_BELOW ROOT_BELOW_F32
#ifdef HAVE_FAST_BLOCK
#define FAST_BLOCK hamerly_chunk_fast
#endif
#include "_ckernels_real.h"
#undef FAST_BLOCK
#undef ROOT_ABOVE
#undef ROOT_BELOW
#undef REAL
#undef SFX
#define REAL double
#define SFX(name) name##_f64
#define ROOT_ABOVE sqrt
#define ROOT_BELOW sqrt
#include "_ckernels_real.h"
#undef REAL
#undef SFX

#include "_ckernels_meanshift.h"

/* ---- the flood fill (_region_numba._connect) ---- */

SIMD_CLONES static Py_ssize_t connect(const double *restrict values, Py_ssize_t h, Py_ssize_t w,
                                      Py_ssize_t c, double threshold, int diagonal,
                                      int64_t *restrict labels, int64_t *restrict stack)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t start = 0; start < h * w; start++) {
        if (labels[start] >= 0)
            continue;
        labels[start] = n;
        Py_ssize_t top = 0;
        stack[0] = start;
        while (top >= 0) {
            Py_ssize_t p = stack[top--];
            Py_ssize_t y = p / w, x = p % w;
            Py_ssize_t y0 = y > 0 ? y - 1 : 0, y1 = y + 2 < h ? y + 2 : h;
            Py_ssize_t x0 = x > 0 ? x - 1 : 0, x1 = x + 2 < w ? x + 2 : w;
            for (Py_ssize_t yy = y0; yy < y1; yy++)
                for (Py_ssize_t xx = x0; xx < x1; xx++) {
                    Py_ssize_t q = yy * w + xx;
                    if (labels[q] >= 0 || (!diagonal && yy != y && xx != x))
                        continue;
                    int near = 1;
                    for (Py_ssize_t k = 0; k < c; k++)
                        if (fabs(values[p * c + k] - values[q * c + k]) >= threshold)
                            near = 0;
                    if (near) {
                        labels[q] = n;
                        stack[++top] = q;
                    }
                }
        }
        n++;
    }
    return n;
}

/* ---- arguments ---- */

#define MAX_ARGS 24

typedef struct {
    Py_buffer views[MAX_ARGS];
    int n;
} Views;

static void release(Views *v)
{
    for (int i = 0; i < v->n; i++)
        PyBuffer_Release(&v->views[i]);
    v->n = 0;
}

/* The data of a C-contiguous array of ``ndim`` dimensions whose items are ``kind``: 'f' float32,
 * 'd' float64, 'i' int32, 'q' int64, '?' bool, 'r' float32 or float64 (*itemsize tells which).
 * ``shape`` receives the dimensions. NULL with a TypeError when the array is not what the kernel
 * reads (a bug in the caller: the Python wrappers make every array). */
static void *array(Views *v, PyObject *obj, const char *name, int ndim, char kind, int writable,
                   Py_ssize_t *shape, Py_ssize_t *itemsize)
{
    Py_buffer *view = &v->views[v->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name,
                     writable ? " writable" : "");
        return NULL;
    }
    v->n++;
    const char *fmt = view->format ? view->format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@')
        fmt++;
    char got = *fmt;
    if (got == 'l' && view->itemsize == 8)
        got = 'q';
    int ok = view->ndim == ndim;
    if (kind == 'r')
        ok = ok && (got == 'f' || got == 'd');
    else
        ok = ok && got == kind;
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %d-d array of kind '%c', got %d-d '%s'",
                     name, ndim, kind, view->ndim, view->format ? view->format : "B");
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        shape[i] = view->shape[i];
    if (itemsize)
        *itemsize = view->itemsize;
    return view->buf;
}

static int check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *name)
{
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s takes %zd arguments, got %zd", name, want, nargs);
        return -1;
    }
    return 0;
}

/* The data XT (D, N), float32 or float64 (*itemsize), and the centres in its type (K, D). */
static int data_and_centers(Views *v, PyObject *const *args, void **XT, void **centers,
                            Py_ssize_t sx[2], Py_ssize_t sc[2], Py_ssize_t *itemsize)
{
    *XT = array(v, args[0], "XT", 2, 'r', 0, sx, itemsize);
    if (!*XT)
        return -1;
    *centers = array(v, args[1], "centers", 2, *itemsize == 4 ? 'f' : 'd', 0, sc, NULL);
    return *centers ? 0 : -1;
}

#define ARRAY(var, type, i, ndim, kind, writable, shape)                                      \
    type *var = (type *)array(&V, args[i], #var, ndim, kind, writable, shape, NULL);          \
    if (!var)                                                                                 \
        goto fail;

#define RANGE(i)                                                                              \
    Py_ssize_t c_lo = PyLong_AsSsize_t(args[i]), c_hi = PyLong_AsSsize_t(args[(i) + 1]);      \
    if (PyErr_Occurred())                                                                     \
        goto fail;

static PyObject *py_prepare(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 8, "_prepare") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sx[2], st[2], s1[2], s2[2], s3[2], sb[1], size;
    void *X = array(&V, args[0], "X", 2, 'r', 0, sx, &size);
    if (!X)
        goto fail;
    void *XT = array(&V, args[1], "XT", 2, size == 4 ? 'f' : 'd', 1, st, NULL);
    if (!XT)
        goto fail;
    ARRAY(shift, double, 2, 2, 'd', 1, s1)
    ARRAY(s, double, 3, 2, 'd', 1, s2)
    ARRAY(ss, double, 4, 2, 'd', 1, s3)
    ARRAY(bad, int64_t, 5, 1, 'q', 1, sb)
    RANGE(6)
    Py_ssize_t n = sx[0];
    int d = (int)sx[1];
    Py_BEGIN_ALLOW_THREADS;
    if (size == 4)
        prepare_f32(X, XT, n, d, shift, s, ss, bad, c_lo, c_hi);
    else
        prepare_f64(X, XT, n, d, shift, s, ss, bad, c_lo, c_hi);
    Py_END_ALLOW_THREADS;
    release(&V);
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

static PyObject *py_assign(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 13, "_assign") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sx[2], sc[2], s64[2], sl[1], sps[3], spc[2], sch[1], spi[1], size;
    void *XT, *centers;
    if (data_and_centers(&V, args, &XT, &centers, sx, sc, &size) < 0)
        goto fail;
    ARRAY(c64, const double, 2, 2, 'd', 0, s64)
    double R = PyFloat_AsDouble(args[3]), A = PyFloat_AsDouble(args[4]);
    ARRAY(labels, int32_t, 5, 1, 'i', 1, sl)
    int want_sums = PyObject_IsTrue(args[6]);
    ARRAY(psums, double, 7, 3, 'd', 1, sps)
    ARRAY(pcounts, int64_t, 8, 2, 'q', 1, spc)
    ARRAY(pchanged, int64_t, 9, 1, 'q', 1, sch)
    ARRAY(pinertia, double, 10, 1, 'd', 1, spi)
    RANGE(11)
    if (PyErr_Occurred() || want_sums < 0)
        goto fail;
    Py_ssize_t n = sx[1];
    int d = (int)sx[0], k = (int)sc[0];
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS;
    void *w = malloc(size == 4 ? sizeof(Scratch_f32) : sizeof(Scratch_f64));
    if (w) {
        if (size == 4)
            assign_f32(XT, n, d, centers, c64, k, R, A, labels, want_sums, psums, pcounts,
                       pchanged, pinertia, spi[0] > 0, w, c_lo, c_hi);
        else
            assign_f64(XT, n, d, centers, c64, k, R, A, labels, want_sums, psums, pcounts,
                       pchanged, pinertia, spi[0] > 0, w, c_lo, c_hi);
    } else
        ok = 0;
    free(w);
    Py_END_ALLOW_THREADS;
    release(&V);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

static PyObject *py_hamerly_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 15, "_hamerly_step") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sx[2], sc[2], s64[2], sl[1], sk[1], sdec[1], sh[1], sds[3], sdc[2], sch[1],
        spi[1], size;
    void *XT, *centers;
    if (data_and_centers(&V, args, &XT, &centers, sx, sc, &size) < 0)
        goto fail;
    ARRAY(c64, const double, 2, 2, 'd', 0, s64)
    double R = PyFloat_AsDouble(args[3]), A = PyFloat_AsDouble(args[4]);
    ARRAY(labels, int32_t, 5, 1, 'i', 1, sl)
    ARRAY(key, float, 6, 1, 'f', 1, sk)
    ARRAY(decrement, const double, 7, 1, 'd', 0, sdec)
    ARRAY(half_sep, const double, 8, 1, 'd', 0, sh)
    ARRAY(dsums, double, 9, 3, 'd', 1, sds)
    ARRAY(dcounts, int64_t, 10, 2, 'q', 1, sdc)
    ARRAY(pchanged, int64_t, 11, 1, 'q', 1, sch)
    ARRAY(pinertia, double, 12, 1, 'd', 1, spi)
    RANGE(13)
    if (PyErr_Occurred())
        goto fail;
    Py_ssize_t n = sx[1];
    int d = (int)sx[0], k = (int)sc[0];
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS;
    void *w = malloc(size == 4 ? sizeof(Scratch_f32) : sizeof(Scratch_f64));
    if (w) {
        if (size == 4)
            hamerly_step_f32(XT, n, d, centers, c64, k, R, A, labels, key, decrement, half_sep,
                             dsums, dcounts, pchanged, pinertia, spi[0] > 0, w, c_lo, c_hi);
        else
            hamerly_step_f64(XT, n, d, centers, c64, k, R, A, labels, key, decrement, half_sep,
                             dsums, dcounts, pchanged, pinertia, spi[0] > 0, w, c_lo, c_hi);
    } else
        ok = 0;
    free(w);
    Py_END_ALLOW_THREADS;
    release(&V);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

static PyObject *py_sqdist_to_assigned(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 6, "_sqdist_to_assigned") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sx[2], sc[2], sl[1], so[1], size;
    void *XT = array(&V, args[0], "XT", 2, 'r', 0, sx, &size);
    if (!XT)
        goto fail;
    ARRAY(centers, const double, 1, 2, 'd', 0, sc)
    ARRAY(labels, const int32_t, 2, 1, 'i', 0, sl)
    ARRAY(out, double, 3, 1, 'd', 1, so)
    RANGE(4)
    Py_ssize_t n = sx[1];
    int d = (int)sx[0];
    Py_BEGIN_ALLOW_THREADS;
    if (size == 4)
        sqdist_to_assigned_f32(XT, n, d, centers, labels, out, c_lo, c_hi);
    else
        sqdist_to_assigned_f64(XT, n, d, centers, labels, out, c_lo, c_hi);
    Py_END_ALLOW_THREADS;
    release(&V);
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

static PyObject *py_min_sqdist_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 7, "_min_sqdist_update") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sx[2], sp[1], sc[1], so[1], spa[1], size;
    void *XT = array(&V, args[0], "XT", 2, 'r', 0, sx, &size);
    if (!XT)
        goto fail;
    ARRAY(point, const double, 1, 1, 'd', 0, sp)
    ARRAY(closest, const double, 2, 1, 'd', 0, sc)
    ARRAY(out, double, 3, 1, 'd', 1, so)
    ARRAY(partial, double, 4, 1, 'd', 1, spa)
    RANGE(5)
    Py_ssize_t n = sx[1];
    int d = (int)sx[0];
    Py_BEGIN_ALLOW_THREADS;
    if (size == 4)
        min_sqdist_update_f32(XT, n, d, point, closest, out, partial, c_lo, c_hi);
    else
        min_sqdist_update_f64(XT, n, d, point, closest, out, partial, c_lo, c_hi);
    Py_END_ALLOW_THREADS;
    release(&V);
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

static PyObject *py_connect(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 5, "_connect") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sv[3], sl[1], ss[1];
    ARRAY(values, const double, 0, 3, 'd', 0, sv)
    double threshold = PyFloat_AsDouble(args[1]);
    int diagonal = PyObject_IsTrue(args[2]);
    ARRAY(labels, int64_t, 3, 1, 'q', 1, sl)
    ARRAY(stack, int64_t, 4, 1, 'q', 1, ss)
    if (PyErr_Occurred() || diagonal < 0)
        goto fail;
    Py_ssize_t h = sv[0], w = sv[1], c = sv[2], n;
    if (sl[0] != h * w || ss[0] < h * w) {
        PyErr_SetString(PyExc_ValueError, "_connect: labels and stack must hold H * W items");
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS;
    n = connect(values, h, w, c, threshold, diagonal, labels, stack);
    Py_END_ALLOW_THREADS;
    release(&V);
    return PyLong_FromSsize_t(n);
fail:
    release(&V);
    return NULL;
}

static PyObject *py_modes3(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (check_nargs(nargs, 15, "_modes3") < 0)
        return NULL;
    Views V = {.n = 0};
    Py_ssize_t sr[3], sm[3], sn[2], sq[1];
    ARRAY(R, const float, 0, 3, 'f', 0, sr)
    Climb K = {.R = R, .h = sr[1], .wp = sr[2]};
    K.w = PyLong_AsSsize_t(args[1]);
    K.pad = PyLong_AsSsize_t(args[2]);
    K.hs = PyFloat_AsDouble(args[3]);
    long kernel = PyLong_AsLong(args[4]), speedup = PyLong_AsLong(args[5]);
    K.support = PyFloat_AsDouble(args[6]);
    K.max_iter = (int)PyLong_AsLong(args[7]);
    K.tol = PyFloat_AsDouble(args[8]);
    ARRAY(modes, double, 9, 3, 'd', 1, sm)
    ARRAY(n_iter, int64_t, 10, 2, 'q', 1, sn)
    K.bright = PyFloat_AsDouble(args[11]);
    ARRAY(rscale2, const double, 12, 1, 'd', 0, sq)
    RANGE(13)
    if (PyErr_Occurred())
        goto fail;
    K.modes = modes;
    K.n_iter = n_iter;
    K.rscale2 = rscale2;
    if (sr[0] != 3 || kernel < 0 || kernel > 2 || speedup < 0 || speedup > 2 || sm[0] != K.h ||
        sm[1] != K.w || sm[2] != 5 || sn[0] != K.h || sn[1] != K.w || sq[0] < 3 ||
        K.wp != K.w + 2 * K.pad) {
        PyErr_SetString(PyExc_ValueError, "_modes3: arrays do not match the image");
        goto fail;
    }
    Py_ssize_t band = speedup > 0 ? MS_BAND : 1;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS;
    uint8_t *table = malloc((size_t)(band * K.w));
    int64_t *plist = malloc((size_t)(band * K.w) * sizeof(int64_t));
    if (table && plist)
        ms_instances[kernel][speedup](&K, table, plist, c_lo, c_hi);
    else
        ok = 0;
    free(table);
    free(plist);
    Py_END_ALLOW_THREADS;
    release(&V);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
fail:
    release(&V);
    return NULL;
}

/* _set_fast_kmeans(on): switch the AVX-512 Hamerly kernel on or off (on only where the CPU has
 * it); returns whether it was on. None changes nothing. For tests and benchmarks, which compare
 * it with the portable loops (_kernel_backend.fast_kmeans). */
static PyObject *py_set_fast_kmeans(PyObject *self, PyObject *arg)
{
#ifdef HAVE_FAST_BLOCK
    if (arg == Py_None)
        return PyBool_FromLong(fast_block_enabled);
#endif
    int on = arg == Py_None ? 0 : PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
#ifdef HAVE_FAST_BLOCK
    int was = fast_block_enabled;
    fast_block_enabled = on && fast_block_supported();
    return PyBool_FromLong(was);
#else
    return PyBool_FromLong(0);
#endif
}

static PyMethodDef methods[] = {
    {"_set_fast_kmeans", (PyCFunction)py_set_fast_kmeans, METH_O, NULL},
    {"_prepare", (PyCFunction)(void (*)(void))py_prepare, METH_FASTCALL, NULL},
    {"_assign", (PyCFunction)(void (*)(void))py_assign, METH_FASTCALL, NULL},
    {"_hamerly_step", (PyCFunction)(void (*)(void))py_hamerly_step, METH_FASTCALL, NULL},
    {"_sqdist_to_assigned", (PyCFunction)(void (*)(void))py_sqdist_to_assigned, METH_FASTCALL,
     NULL},
    {"_min_sqdist_update", (PyCFunction)(void (*)(void))py_min_sqdist_update, METH_FASTCALL,
     NULL},
    {"_connect", (PyCFunction)(void (*)(void))py_connect, METH_FASTCALL, NULL},
    {"_modes3", (PyCFunction)(void (*)(void))py_modes3, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ckernels",
    "seglab's clustering kernels, compiled at install (see _ckernels.c).", -1, methods, NULL,
    NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ckernels(void)
{
#ifdef HAVE_FAST_BLOCK
    fast_block_enabled = fast_block_supported();
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "CHUNK", CHUNK) < 0 ||
              PyModule_AddIntConstant(m, "BLOCK", BLOCK) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
