/* The k-means kernels of _ckernels.c for one floating type: included twice, with REAL float
 * and SFX(name) name##_f32, then with REAL double and SFX(name) name##_f64.
 *
 * Each function is the C twin of the numba kernel of the same name in _kmeans_numba.py, with the
 * same loops in the same order and the same arithmetic (no contraction into FMA: the build
 * passes -ffp-contract=off), so the labels, sums and inertia are the same bits. One difference
 * by design: for float32 data the bounds' square roots are taken in float32 and widened
 * (ROOT_ABOVE, ROOT_BELOW), so the keys and the set of points sent to float64 differ from
 * numba's; both stay rigorous, so no label can. Arrays are C-contiguous: XT is (d, n), centres
 * (k, d), per-chunk results (n_chunks, ...). */

/* nearest_two for a number of features D known at compile time and m a multiple of LANES: each
 * vector of LANES points is loaded once and kept in registers while it meets every centre, and
 * its two smallest distances and nearest centre stay in registers too (the generic loop below
 * streams the block from memory once per centre). The distance of a point is summed feature by
 * feature in the same order, so the results are the same bits. */
static ALWAYS_INLINE void SFX(nearest_two_fixed)(
    const REAL *restrict src, Py_ssize_t stride, Py_ssize_t off, Py_ssize_t m,
    const REAL *restrict centers, int k, const int D, REAL *restrict b1, REAL *restrict b2,
    int32_t *restrict bk)
{
    for (Py_ssize_t qb = 0; qb < m; qb += LANES) {
        REAL x[MAX_FIXED_D][LANES], v1[LANES], v2[LANES];
        int32_t vk[LANES];
        for (int f = 0; f < D; f++)
            for (int q = 0; q < LANES; q++)
                x[f][q] = src[f * stride + off + qb + q];
        for (int q = 0; q < LANES; q++) {
            v1[q] = (REAL)INFINITY;
            v2[q] = (REAL)INFINITY;
            vk[q] = 0;
        }
        for (int j = 0; j < k; j++) {
            const REAL *restrict c = centers + (Py_ssize_t)j * D;
            for (int q = 0; q < LANES; q++) {
                REAL t = x[0][q] - c[0];
                REAL dq = t * t;
                for (int f = 1; f < D; f++) {
                    t = x[f][q] - c[f];
                    dq += t * t;
                }
                REAL hi = dq > v1[q] ? dq : v1[q];
                v2[q] = hi < v2[q] ? hi : v2[q];
                int closer = dq < v1[q];
                vk[q] = closer ? j : vk[q];
                v1[q] = closer ? dq : v1[q];
            }
        }
        for (int q = 0; q < LANES; q++) {
            b1[qb + q] = v1[q];
            b2[qb + q] = v2[q];
            bk[qb + q] = vk[q];
        }
    }
}

/* The nearest centre of point i in float64: the exact label of a point whose two nearest
 * centres are too close to call in float32 (the first of equals, as the float32 loops). */
static ALWAYS_INLINE int32_t SFX(exact_nearest)(const REAL *restrict src, Py_ssize_t stride,
                                                Py_ssize_t i, const double *restrict c64, int k,
                                                int d)
{
    double best = INFINITY;
    int32_t nearest = 0;
    for (int j = 0; j < k; j++) {
        double s = 0.0;
        for (int f = 0; f < d; f++) {
            double t = (double)src[f * stride + i] - c64[(Py_ssize_t)j * d + f];
            s += t * t;
        }
        if (s < best) {
            best = s;
            nearest = j;
        }
    }
    return nearest;
}

static ALWAYS_INLINE void SFX(nearest_two)(
    const REAL *restrict src, Py_ssize_t stride, Py_ssize_t off, Py_ssize_t m,
    const REAL *restrict centers, const double *restrict c64, int k, int d, double R, double A,
    REAL *restrict b1, REAL *restrict b2, int32_t *restrict bk, REAL *restrict dist)
{
    if (m % LANES == 0 && d <= MAX_FIXED_D) {
        switch (d) {
        case 1: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 1, b1, b2, bk); break;
        case 2: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 2, b1, b2, bk); break;
        case 3: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 3, b1, b2, bk); break;
        case 4: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 4, b1, b2, bk); break;
        case 5: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 5, b1, b2, bk); break;
        case 6: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 6, b1, b2, bk); break;
        case 7: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 7, b1, b2, bk); break;
        default: SFX(nearest_two_fixed)(src, stride, off, m, centers, k, 8, b1, b2, bk); break;
        }
        goto check;
    }
    for (Py_ssize_t q = 0; q < m; q++) {
        b1[q] = (REAL)INFINITY;
        b2[q] = (REAL)INFINITY;
        bk[q] = 0;
    }
    for (int j = 0; j < k; j++) {
        const REAL *restrict row = src + off;
        REAL cf = centers[(Py_ssize_t)j * d];
        for (Py_ssize_t q = 0; q < m; q++) {
            REAL t = row[q] - cf;
            dist[q] = t * t;
        }
        for (int f = 1; f < d - 1; f++) {
            row = src + f * stride + off;
            cf = centers[(Py_ssize_t)j * d + f];
            for (Py_ssize_t q = 0; q < m; q++) {
                REAL t = row[q] - cf;
                dist[q] += t * t;
            }
        }
        if (d == 1) {
            for (Py_ssize_t q = 0; q < m; q++) {
                REAL dq = dist[q];
                REAL hi = dq > b1[q] ? dq : b1[q];
                b2[q] = hi < b2[q] ? hi : b2[q];
                int closer = dq < b1[q];
                bk[q] = closer ? j : bk[q];
                b1[q] = closer ? dq : b1[q];
            }
        } else {
            row = src + (Py_ssize_t)(d - 1) * stride + off;
            cf = centers[(Py_ssize_t)j * d + d - 1];
            for (Py_ssize_t q = 0; q < m; q++) {
                REAL t = row[q] - cf;
                REAL dq = dist[q] + t * t;
                REAL hi = dq > b1[q] ? dq : b1[q];
                b2[q] = hi < b2[q] ? hi : b2[q];
                int closer = dq < b1[q];
                bk[q] = closer ? j : bk[q];
                b1[q] = closer ? dq : b1[q];
            }
        }
    }
check:
    if (R == 0.0 && A == 0.0)
        return;
    Py_ssize_t n_close = 0;
    for (Py_ssize_t q = 0; q < m; q++) {
        double lo = (double)b1[q], hi = (double)b2[q];
        n_close += hi - lo <= close_bound(lo, ROOT_ABOVE(b1[q]), R, A) +
                                  close_bound(hi, ROOT_ABOVE(b2[q]), R, A);
    }
    if (n_close == 0)
        return;
    for (Py_ssize_t q = 0; q < m; q++) {
        double lo = (double)b1[q], hi = (double)b2[q];
        if (hi - lo <= close_bound(lo, ROOT_ABOVE(b1[q]), R, A) +
                           close_bound(hi, ROOT_ABOVE(b2[q]), R, A))
            bk[q] = SFX(exact_nearest)(src, stride, off + q, c64, k, d);
    }
}

static ALWAYS_INLINE void SFX(new_keys)(
    const REAL *restrict b1, const REAL *restrict b2, const int32_t *restrict bk, Py_ssize_t m,
    const double *restrict half_sep, const double *restrict decrement, int k, double R, double A,
    float *restrict out, double *restrict sep, double *restrict dec)
{
    for (int j = 0; j < k; j++) {
        double s_j = half_sep[j], d_j = decrement[j];
        for (Py_ssize_t q = 0; q < m; q++) {
            int mine = bk[q] == j;
            sep[q] = mine ? s_j : sep[q];
            dec[q] = mine ? d_j : dec[q];
        }
    }
    double widen_up = 1.0 + 2.0 * R, widen_down = 1.0 - 2.0 * R;
    for (Py_ssize_t q = 0; q < m; q++) {
        double upper = ROOT_ABOVE(b1[q]) * widen_up + 4.0 * A;
        double lower = ROOT_BELOW(b2[q]) * widen_down - 4.0 * A;
        double low = lower > sep[q] ? lower : sep[q];
        out[q] = round_down(low - upper + dec[q]);
    }
}

/* sums[j] += the points of the block labelled j, counts[j] += their number. Each (centre,
 * feature) sum is kept in LANES partial sums (a SIMD register) and added up once: numba
 * reassociates the same sum its own way, so the two agree to rounding (1e-12 relative). */
static ALWAYS_INLINE void SFX(add_sums)(
    const REAL *restrict src, Py_ssize_t stride, Py_ssize_t off, Py_ssize_t m,
    const int32_t *restrict bk, int k, int d, double *restrict sums, int64_t *restrict counts)
{
    Py_ssize_t whole = m / LANES * LANES;
    for (int j = 0; j < k; j++) {
        Py_ssize_t n_j = 0;
        for (Py_ssize_t q = 0; q < m; q++)
            n_j += bk[q] == j;
        if (n_j == 0)
            continue;
        counts[j] += n_j;
        for (int f = 0; f < d; f++) {
            const REAL *restrict row = src + f * stride + off;
            double lane[LANES] = {0};
            /* a product, not `bk == j ? x : 0`: GCC 12 miscompiles that masked sum for AVX-512
             * (tests/test_kmeans.py caught it); the data are finite, so x * 0 is 0 */
            for (Py_ssize_t q0 = 0; q0 < whole; q0 += LANES)
                for (int l = 0; l < LANES; l++)
                    lane[l] += (double)row[q0 + l] * (double)(bk[q0 + l] == j);
            double acc = 0.0;
            for (int l = 0; l < LANES; l++)
                acc += lane[l];
            for (Py_ssize_t q = whole; q < m; q++)
                acc += bk[q] == j ? (double)row[q] : 0.0;
            sums[(Py_ssize_t)j * d + f] += acc;
        }
    }
}

static ALWAYS_INLINE void SFX(add_sqdist)(
    const REAL *restrict XT, Py_ssize_t n, int d, Py_ssize_t start, Py_ssize_t m,
    const double *restrict centers, int k, const int32_t *restrict labels, double *restrict cf,
    double *restrict acc)
{
    const int32_t *restrict lab = labels + start;
    for (int f = 0; f < d; f++) {
        for (int j = 0; j < k; j++) {
            double v = centers[(Py_ssize_t)j * d + f];
            for (Py_ssize_t q = 0; q < m; q++)
                cf[q] = lab[q] == j ? v : cf[q];
        }
        const REAL *restrict row = XT + f * n + start;
        for (Py_ssize_t q = 0; q < m; q++) {
            double t = (double)row[q] - cf[q];
            acc[q] += t * t;
        }
    }
}

typedef struct {
    double acc[BLOCK], sep[BLOCK], dec[BLOCK];
    REAL b1[BLOCK], b2[BLOCK], dist[BLOCK];
    int32_t bk[BLOCK];
    uint8_t flag[2][BLOCK]; /* this block's bound tests and the next one's */
    float kb[BLOCK];
} SFX(Scratch);

/* prepare's pass over one chunk for features f0 .. f0 + D - 1 of d. With D known at compile
 * time (prepare calls it with constants up to MAX_FIXED_D) the loop over features unrolls and
 * the running sums stay in registers: a third of the time of a loop with d read at run time,
 * the same sums (each feature's, point by point). */
static ALWAYS_INLINE void SFX(prepare_chunk)(const REAL *restrict X, REAL *restrict XT,
                                             Py_ssize_t n, int d, int f0, const int D,
                                             Py_ssize_t start, Py_ssize_t stop,
                                             const double *restrict sh, double *restrict sc,
                                             double *restrict ssc)
{
    double s_[MAX_FIXED_D], ss_[MAX_FIXED_D];
    for (int f = 0; f < D; f++) {
        s_[f] = sc[f0 + f];
        ss_[f] = ssc[f0 + f];
    }
    for (Py_ssize_t i = start; i < stop; i++) {
        for (int f = 0; f < D; f++) {
            REAL v = X[i * d + f0 + f];
            XT[(f0 + f) * n + i] = v;
            double t = (double)v - sh[f0 + f];
            s_[f] += t;
            ss_[f] += t * t;
        }
    }
    for (int f = 0; f < D; f++) {
        sc[f0 + f] = s_[f];
        ssc[f0 + f] = ss_[f];
    }
}

SIMD_CLONES static void SFX(prepare)(
    const REAL *restrict X, REAL *restrict XT, Py_ssize_t n, int d, double *restrict shift,
    double *restrict s, double *restrict ss, int64_t *restrict bad, Py_ssize_t c_lo,
    Py_ssize_t c_hi)
{
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        Py_ssize_t start = c * CHUNK, stop = start + CHUNK < n ? start + CHUNK : n;
        double *sh = shift + c * d, *sc = s + c * d, *ssc = ss + c * d;
        for (int f = 0; f < d; f++)
            sh[f] = (double)X[start * d + f];
        for (int f0 = 0; f0 < d; f0 += MAX_FIXED_D) { /* up to 8 features a pass */
#define PREPARE(D) SFX(prepare_chunk)(X, XT, n, d, f0, D, start, stop, sh, sc, ssc); break;
            switch (d - f0 < MAX_FIXED_D ? d - f0 : MAX_FIXED_D) {
            case 1: PREPARE(1)
            case 2: PREPARE(2)
            case 3: PREPARE(3)
            case 4: PREPARE(4)
            case 5: PREPARE(5)
            case 6: PREPARE(6)
            case 7: PREPARE(7)
            default: PREPARE(8)
            }
#undef PREPARE
        }
        double total = 0.0;
        for (int f = 0; f < d; f++)
            total += sc[f] + ssc[f];
        if (!isfinite(total))
            for (int f = 0; f < d; f++)
                for (Py_ssize_t i = start; i < stop; i++)
                    bad[c] += !isfinite(XT[f * n + i]);
    }
}

SIMD_CLONES static void SFX(assign)(
    const REAL *restrict XT, Py_ssize_t n, int d, const REAL *restrict centers,
    const double *restrict c64, int k, double R, double A, int32_t *restrict labels,
    int want_sums, double *restrict psums, int64_t *restrict pcounts, int64_t *restrict pchanged,
    double *restrict pinertia, int with_inertia, SFX(Scratch) *restrict w, Py_ssize_t c_lo,
    Py_ssize_t c_hi)
{
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        for (int q = 0; q < BLOCK; q++)
            w->acc[q] = 0.0;
        Py_ssize_t stop = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (Py_ssize_t start = c * CHUNK; start < stop; start += BLOCK) {
            Py_ssize_t m = (start + BLOCK < n ? start + BLOCK : n) - start;
            SFX(nearest_two)(XT, n, start, m, centers, c64, k, d, R, A, w->b1, w->b2, w->bk,
                             w->dist);
            int64_t changed = 0;
            for (Py_ssize_t q = 0; q < m; q++) {
                changed += labels[start + q] != w->bk[q];
                labels[start + q] = w->bk[q];
            }
            pchanged[c] += changed;
            if (want_sums)
                SFX(add_sums)(XT, n, start, m, w->bk, k, d, psums + c * k * d, pcounts + c * k);
            if (with_inertia) /* as hamerly_step: per lane, with the labels just written */
                SFX(add_sqdist)(XT, n, d, start, m, c64, k, labels, w->sep, w->acc);
        }
        if (with_inertia)
            pinertia[c] = block_total(w->acc);
    }
}

/* Hamerly's test (key < decrement[label]) for the m points from ``from`` into flag[]; the
 * feature rows of each vector of LANES points with a failing point are prefetched. Returns how
 * many fail. ``dec16``: NULL, or (K <= 16) the decrements rounded up to float32, padded to 16
 * (the same test: see float_at_least). */
static ALWAYS_INLINE Py_ssize_t SFX(test_bounds)(
    const REAL *restrict XT, Py_ssize_t n, int d, const int32_t *restrict labels,
    const float *restrict key, const double *restrict decrement, Py_ssize_t from, Py_ssize_t m,
    const float *restrict dec16, uint8_t *restrict flag)
{
    Py_ssize_t count = 0;
    if (dec16) { /* K <= 16: a float32 table */
        for (Py_ssize_t q = 0; q < m; q++) {
            uint8_t fails = key[from + q] < dec16[labels[from + q] & 15];
            flag[q] = fails;
            count += fails;
        }
    } else {
        for (Py_ssize_t q = 0; q < m; q++) {
            uint8_t fails = key[from + q] < decrement[labels[from + q]];
            flag[q] = fails;
            count += fails;
        }
    }
    for (Py_ssize_t v0 = 0; count > 0 && v0 < m; v0 += LANES)
        if (any_flag(flag, v0, m)) {
            Py_ssize_t last = (v0 + LANES < m ? v0 + LANES : m) - 1;
            for (int f = 0; f < d; f++) {
                PREFETCH(XT + f * n + from + v0);
                PREFETCH(XT + f * n + from + last);
            }
        }
    return count;
}

SIMD_CLONES static void SFX(hamerly_step)(
    const REAL *restrict XT, Py_ssize_t n, int d, const REAL *restrict centers,
    const double *restrict c64, int k, double R, double A, int32_t *restrict labels,
    float *restrict key, const double *restrict decrement, const double *restrict half_sep,
    double *restrict dsums, int64_t *restrict dcounts, int64_t *restrict pchanged,
    double *restrict pinertia, int with_inertia, SFX(Scratch) *restrict w, Py_ssize_t c_lo,
    Py_ssize_t c_hi)
{
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        for (int q = 0; q < BLOCK; q++)
            w->acc[q] = 0.0;
        Py_ssize_t stop = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n, done = c * CHUNK;
        int fast = 0;
#ifdef FAST_BLOCK
        fast = fast_block_enabled && d <= MAX_FIXED_D && k >= 2 && k <= FAST_MAX_K;
        if (fast) { /* the chunk's whole vectors (_ckernels_avx512.h); the last few below */
            Py_ssize_t m = (stop - done) / LANES * LANES;
            FAST_BLOCK(XT, n, d, centers, c64, k, R, A, labels, key, decrement, half_sep,
                       dsums + c * k * d, dcounts + c * k, pchanged + c, done, m);
            done += m;
        }
#endif
        (void)fast; /* used only where the fast kernel exists */
        /* the bound tests run one block ahead, and the rows of the vectors they send to be
         * recomputed are prefetched: late in a fit few vectors fail, far apart, and each one's
         * rows were cache misses the step waited on */
        float dec16[16];
        for (int j = 0; j < 16; j++)
            dec16[j] = j < k ? float_at_least(decrement[j]) : INFINITY;
        const float *table = k <= 16 ? dec16 : NULL;
        Py_ssize_t count_next = SFX(test_bounds)(
            XT, n, d, labels, key, decrement, done,
            (done + BLOCK < stop ? done + BLOCK : stop) - done, table, w->flag[0]);
        int t = 0;
        for (Py_ssize_t start = done; start < stop; start += BLOCK, t ^= 1) {
            Py_ssize_t m = (start + BLOCK < stop ? start + BLOCK : stop) - start;
            Py_ssize_t count = count_next, next = start + m;
            count_next = SFX(test_bounds)(XT, n, d, labels, key, decrement, next,
                                          (next + BLOCK < stop ? next + BLOCK : stop) - next,
                                          table, w->flag[t ^ 1]);
            const uint8_t *flag = w->flag[t];
            /* runs of whole vectors holding a point that may change are recomputed where they
             * lie (their other points' bounds are refreshed on the way); no gather */
            for (Py_ssize_t v0 = 0; count > 0 && v0 < m; v0 += LANES) {
                if (!any_flag(flag, v0, m))
                    continue;
                Py_ssize_t v1 = v0 + LANES;
                while (v1 < m && any_flag(flag, v1, m))
                    v1 += LANES;
                v1 = v1 < m ? v1 : m;
                Py_ssize_t len = v1 - v0, off = start + v0;
                SFX(nearest_two)(XT, n, off, len, centers, c64, k, d, R, A, w->b1, w->b2, w->bk,
                                 w->dist);
                SFX(new_keys)(w->b1, w->b2, w->bk, len, half_sep, decrement, k, R, A, w->kb,
                              w->sep, w->dec);
                for (Py_ssize_t p = 0; p < len; p++) {
                    Py_ssize_t i = off + p;
                    int32_t a = labels[i], j = w->bk[p];
                    key[i] = w->kb[p];
                    if (j != a) {
                        pchanged[c] += 1;
                        labels[i] = j;
                        dcounts[c * k + a] -= 1;
                        dcounts[c * k + j] += 1;
                        for (int f = 0; f < d; f++) {
                            REAL x = XT[f * n + i];
                            dsums[(c * k + a) * d + f] -= x;
                            dsums[(c * k + j) * d + f] += x;
                        }
                    }
                }
                v0 = v1 - LANES;
            }
        }
        if (!with_inertia)
            continue;
        /* block by block, as the labels of a block are final once it is done */
        for (Py_ssize_t start = c * CHUNK; start < stop; start += BLOCK) {
            Py_ssize_t m = (start + BLOCK < stop ? start + BLOCK : stop) - start;
#ifdef FAST_BLOCK
            if (fast && m % LANES == 0) {
                add_sqdist_fast(XT, n, d, start, m, c64, k, labels, w->acc);
                continue;
            }
#endif
            SFX(add_sqdist)(XT, n, d, start, m, c64, k, labels, w->sep, w->acc);
        }
        pinertia[c] = block_total(w->acc);
    }
}

SIMD_CLONES static void SFX(sqdist_to_assigned)(
    const REAL *restrict XT, Py_ssize_t n, int d, const double *restrict centers,
    const int32_t *restrict labels, double *restrict out, Py_ssize_t c_lo, Py_ssize_t c_hi)
{
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        Py_ssize_t stop = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
        for (int f = 0; f < d; f++)
            for (Py_ssize_t i = c * CHUNK; i < stop; i++) {
                double t = (double)XT[f * n + i] - centers[(Py_ssize_t)labels[i] * d + f];
                out[i] += t * t;
            }
    }
}

SIMD_CLONES static void SFX(min_sqdist_update)(
    const REAL *restrict XT, Py_ssize_t n, int d, const double *restrict point,
    const double *restrict closest, double *restrict out, double *restrict partial,
    Py_ssize_t c_lo, Py_ssize_t c_hi)
{
    for (Py_ssize_t c = c_lo; c < c_hi; c++) {
        Py_ssize_t start = c * CHUNK, stop = start + CHUNK < n ? start + CHUNK : n;
        double *restrict dist = out + start;
        Py_ssize_t m = stop - start;
        for (Py_ssize_t q = 0; q < m; q++)
            dist[q] = 0.0;
        for (int f = 0; f < d; f++) {
            double p = point[f];
            const REAL *restrict row = XT + f * n + start;
            for (Py_ssize_t q = 0; q < m; q++) {
                double t = (double)row[q] - p;
                dist[q] += t * t;
            }
        }
        double acc = 0.0;
        for (Py_ssize_t q = 0; q < m; q++) {
            double v = dist[q] < closest[start + q] ? dist[q] : closest[start + q];
            dist[q] = v;
            acc += v;
        }
        partial[c] = acc;
    }
}
