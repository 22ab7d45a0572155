/* The Hamerly step for float32 data on AVX-512, one 16-point vector at a time (_ckernels.c picks
 * it at run time where the CPU has AVX-512 F/DQ/BW/VL and 2 <= K <= 16, D <= 8; elsewhere the
 * portable loops of _ckernels_real.h run).
 *
 * Why a kernel of its own: the portable step streams each block through scratch arrays several
 * times (flags, distances, keys, updates) and decides per point in scalar code; a recomputed point
 * cost about 20 cycles. Here each vector of 16 points goes through every stage in registers:
 * its bound test is one table lookup (K <= 16 cluster decrements in one register), its K
 * distances, the float32 error test, the new keys and the label update are vector instructions,
 * and only points that change label or are too close to call leave the registers.
 *
 * Same results as the portable kernel: the distances are summed feature by feature in the same
 * order, the running minima use the same comparisons, a point too close to call is recomputed in
 * float64 the same way, and the sums change point by point in the same order, so labels, sums,
 * counts and the inertia are the same bits. Only the keys (bounds) may differ in their last
 * bits: the square roots are taken in float32 and widened by SQRT_MARGIN, as in the portable
 * loops for float32 data, so that they stay bounds; the close-call test is widened alike (it may
 * send a few more points to float64, which gives the same label). */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#include <immintrin.h>

#define HAVE_FAST_BLOCK 1
#define AVX512_FN __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"), noinline))
#define FAST_MAX_K 16

/* whether the AVX-512 kernel runs: set when the module loads (the CPU has it), cleared by
 * _ckernels._set_fast_kmeans(False) so that tests can compare it with the portable loops */
static int fast_block_enabled = 0;

static int fast_block_supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

static inline __attribute__((always_inline, target("avx512f,avx512dq,avx512bw,avx512vl"))) void
fast_vector(const float *restrict XT, Py_ssize_t n, const int D, const float *restrict centers,
            const double *restrict c64, int k, double R, double A, int32_t *restrict labels,
            float *restrict key, Py_ssize_t i0, __m512d dec_lo, __m512d dec_hi,
            __m512d sep_lo, __m512d sep_hi, double *restrict dsums, int64_t *restrict dcounts,
            int64_t *restrict changed)
{
    __m512i lab = _mm512_loadu_si512((const void *)(labels + i0));
    __m512 x[MAX_FIXED_D];
    for (int f = 0; f < D; f++)
        x[f] = _mm512_loadu_ps(XT + f * n + i0);
    __m512 v1 = _mm512_set1_ps(INFINITY), v2 = v1;
    __m512i vk = _mm512_setzero_si512();
    for (int j = 0; j < k; j++) {
        const float *restrict c = centers + (Py_ssize_t)j * D;
        __m512 t = _mm512_sub_ps(x[0], _mm512_set1_ps(c[0]));
        __m512 dq = _mm512_mul_ps(t, t);
        for (int f = 1; f < D; f++) {
            t = _mm512_sub_ps(x[f], _mm512_set1_ps(c[f]));
            dq = _mm512_add_ps(dq, _mm512_mul_ps(t, t));
        }
        /* hi = dq > v1 ? dq : v1; v2 = hi < v2 ? hi : v2 (max_ps/min_ps return the second
         * operand unless the first is larger/smaller: the same choice) */
        __m512 hi = _mm512_max_ps(dq, v1);
        v2 = _mm512_min_ps(hi, v2);
        __mmask16 closer = _mm512_cmp_ps_mask(dq, v1, _CMP_LT_OQ);
        vk = _mm512_mask_mov_epi32(vk, closer, _mm512_set1_epi32(j));
        v1 = _mm512_mask_mov_ps(v1, closer, dq);
    }
    __m512 s1 = _mm512_sqrt_ps(v1), s2 = _mm512_sqrt_ps(v2);
    __m512d b1[2] = {_mm512_cvtps_pd(_mm512_castps512_ps256(v1)),
                     _mm512_cvtps_pd(_mm512_extractf32x8_ps(v1, 1))};
    __m512d b2[2] = {_mm512_cvtps_pd(_mm512_castps512_ps256(v2)),
                     _mm512_cvtps_pd(_mm512_extractf32x8_ps(v2, 1))};
    __m512d r1[2] = {_mm512_cvtps_pd(_mm512_castps512_ps256(s1)),
                     _mm512_cvtps_pd(_mm512_extractf32x8_ps(s1, 1))};
    __m512d r2[2] = {_mm512_cvtps_pd(_mm512_castps512_ps256(s2)),
                     _mm512_cvtps_pd(_mm512_extractf32x8_ps(s2, 1))};
    if (R != 0.0 || A != 0.0) {
        /* too close to call in float32: hi - lo <= err(lo) + err(hi), err as error_bound with
         * the root bounded from above */
        __m512d vR = _mm512_set1_pd(R), vA = _mm512_set1_pd(A * (1.0 + SQRT_MARGIN)),
                vAA = _mm512_set1_pd(A * A);
        __mmask16 close = 0;
        for (int h = 0; h < 2; h++) {
            __m512d e1 = _mm512_add_pd(
                _mm512_add_pd(_mm512_mul_pd(vR, b1[h]), _mm512_mul_pd(vA, r1[h])), vAA);
            __m512d e2 = _mm512_add_pd(
                _mm512_add_pd(_mm512_mul_pd(vR, b2[h]), _mm512_mul_pd(vA, r2[h])), vAA);
            __mmask8 c8 = _mm512_cmp_pd_mask(_mm512_sub_pd(b2[h], b1[h]),
                                             _mm512_add_pd(e1, e2), _CMP_LE_OQ);
            close |= (__mmask16)((unsigned)c8 << (8 * h));
        }
        if (close) { /* rare: the portable kernel's float64 recomputation, lane by lane */
            int32_t bk[16];
            _mm512_storeu_si512((void *)bk, vk);
            for (unsigned bits = close; bits; bits &= bits - 1) {
                int q = __builtin_ctz(bits);
                bk[q] = exact_nearest_f32(XT, n, i0 + q, c64, k, D);
            }
            vk = _mm512_loadu_si512((const void *)bk);
        }
    }
    /* new keys: max(lower, s[a]) - upper + decrement[a], rounded down to float32 */
    const __m512d up = _mm512_set1_pd((1.0 + 2.0 * R) * (1.0 + SQRT_MARGIN)),
                  down = _mm512_set1_pd((1.0 - 2.0 * R) * (1.0 - SQRT_MARGIN)),
                  four_a = _mm512_set1_pd(4.0 * A), widen = _mm512_set1_pd(2.384185791015625e-07);
    __m512i idx[2] = {_mm512_cvtepi32_epi64(_mm512_castsi512_si256(vk)),
                      _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(vk, 1))};
    __m256 kb[2];
    for (int h = 0; h < 2; h++) {
        __m512d upper = _mm512_add_pd(_mm512_mul_pd(r1[h], up), four_a);
        __m512d lower = _mm512_sub_pd(_mm512_mul_pd(r2[h], down), four_a);
        __m512d low = _mm512_max_pd(lower, _mm512_permutex2var_pd(sep_lo, idx[h], sep_hi));
        __m512d s = _mm512_add_pd(_mm512_sub_pd(low, upper),
                                  _mm512_permutex2var_pd(dec_lo, idx[h], dec_hi));
        s = _mm512_sub_pd(s, _mm512_mul_pd(_mm512_abs_pd(s), widen)); /* round_down */
        kb[h] = _mm512_cvtpd_ps(s);
    }
    _mm512_storeu_ps(key + i0, _mm512_insertf32x8(_mm512_castps256_ps512(kb[0]), kb[1], 1));
    __mmask16 moved = _mm512_cmpneq_epi32_mask(vk, lab);
    if (!moved)
        return;
    _mm512_mask_storeu_epi32((void *)(labels + i0), moved, vk);
    int32_t old[16], now[16];
    _mm512_storeu_si512((void *)old, lab);
    _mm512_storeu_si512((void *)now, vk);
    *changed += __builtin_popcount(moved);
    int32_t a0 = old[__builtin_ctz(moved)];
    if (!_mm512_mask_cmpneq_epi32_mask(moved, lab, _mm512_set1_epi32(a0))) {
        /* every moved point leaves the same cluster (all of them in the first step): that
         * cluster's sums run in registers, not through memory; the same additions in the same
         * order */
        double sa[MAX_FIXED_D];
        for (int f = 0; f < D; f++)
            sa[f] = dsums[(Py_ssize_t)a0 * D + f];
        for (unsigned bits = moved; bits; bits &= bits - 1) {
            int q = __builtin_ctz(bits);
            int32_t j = now[q];
            dcounts[j] += 1;
            for (int f = 0; f < D; f++) {
                float v = XT[f * n + i0 + q];
                sa[f] -= v;
                dsums[(Py_ssize_t)j * D + f] += v;
            }
        }
        dcounts[a0] -= __builtin_popcount(moved);
        for (int f = 0; f < D; f++)
            dsums[(Py_ssize_t)a0 * D + f] = sa[f];
        return;
    }
    for (unsigned bits = moved; bits; bits &= bits - 1) { /* in point order, as the portable */
        int q = __builtin_ctz(bits);
        int32_t a = old[q], j = now[q];
        dcounts[a] -= 1;
        dcounts[j] += 1;
        for (int f = 0; f < D; f++) {
            float v = XT[f * n + i0 + q];
            dsums[(Py_ssize_t)a * D + f] -= v;
            dsums[(Py_ssize_t)j * D + f] += v;
        }
    }
}

/* Hamerly's test for the 16 points from i0: key < decrement[label], with the decrements rounded
 * up to float32 in one register (so the comparison is the float64 one). */
static inline __attribute__((always_inline, target("avx512f,avx512dq,avx512bw,avx512vl"))) __mmask16
bound_fails(const int32_t *restrict labels, const float *restrict key, __m512 dec_f, Py_ssize_t i0)
{
    __m512i lab = _mm512_loadu_si512((const void *)(labels + i0));
    return _mm512_cmp_ps_mask(_mm512_loadu_ps(key + i0), _mm512_permutexvar_ps(lab, dec_f),
                              _CMP_LT_OQ);
}

/* The tests of the block of m points from ``from`` into fails[] and, for the vectors that fail,
 * their feature rows prefetched. Late in a fit only one vector in eight or ten holds a point
 * whose bound fails, and a lone vector's rows are cache misses: the step waited on memory (a
 * sparse vector cost five times a dense one). So the tests run one block ahead and the rows
 * arrive while the block before is worked on. */
static inline __attribute__((always_inline, target("avx512f,avx512dq,avx512bw,avx512vl"))) void
test_block(const float *restrict XT, Py_ssize_t n, int d, const int32_t *restrict labels,
           const float *restrict key, __m512 dec_f, Py_ssize_t from, Py_ssize_t m,
           __mmask16 *restrict fails)
{
    for (Py_ssize_t v = 0; v < m / 16; v++) {
        Py_ssize_t i0 = from + 16 * v;
        fails[v] = bound_fails(labels, key, dec_f, i0);
        if (fails[v])
            for (int f = 0; f < d; f++) {
                _mm_prefetch((const char *)(XT + f * n + i0), _MM_HINT_T0);
                _mm_prefetch((const char *)(XT + f * n + i0 + 15), _MM_HINT_T0);
            }
    }
}

/* The Hamerly step over the m points from ``start`` (m a multiple of 16: the whole vectors of one
 * chunk), for that chunk's dsums, dcounts and changed count. */
AVX512_FN static void hamerly_chunk_fast(const float *restrict XT, Py_ssize_t n, int d,
                                         const float *restrict centers,
                                         const double *restrict c64, int k, double R, double A,
                                         int32_t *restrict labels, float *restrict key,
                                         const double *restrict decrement,
                                         const double *restrict half_sep,
                                         double *restrict dsums, int64_t *restrict dcounts,
                                         int64_t *restrict changed, Py_ssize_t start,
                                         Py_ssize_t m)
{
    float decf[FAST_MAX_K];
    double dec[FAST_MAX_K], sep[FAST_MAX_K];
    for (int j = 0; j < FAST_MAX_K; j++) {
        decf[j] = j < k ? float_at_least(decrement[j]) : INFINITY;
        dec[j] = j < k ? decrement[j] : 0.0;
        sep[j] = j < k ? half_sep[j] : 0.0;
    }
    __m512 dec_f = _mm512_loadu_ps(decf);
    __m512d dec_lo = _mm512_loadu_pd(dec), dec_hi = _mm512_loadu_pd(dec + 8);
    __m512d sep_lo = _mm512_loadu_pd(sep), sep_hi = _mm512_loadu_pd(sep + 8);
    __mmask16 fails[2][BLOCK / 16];
    Py_ssize_t stop = start + m, first = m < BLOCK ? m : BLOCK;
    test_block(XT, n, d, labels, key, dec_f, start, first, fails[0]);
    for (Py_ssize_t b0 = start, t = 0; b0 < stop; b0 += BLOCK, t ^= 1) {
        Py_ssize_t len = stop - b0 < BLOCK ? stop - b0 : BLOCK;
        Py_ssize_t next = stop - (b0 + len) < BLOCK ? stop - (b0 + len) : BLOCK;
        /* the next block's tests read labels and keys that this block does not write */
        test_block(XT, n, d, labels, key, dec_f, b0 + len, next, fails[t ^ 1]);
#define FAST_LOOP(DIM)                                                                           \
    for (Py_ssize_t v = 0; v < len / 16; v++)                                                    \
        if (fails[t][v])                                                                         \
            fast_vector(XT, n, DIM, centers, c64, k, R, A, labels, key, b0 + 16 * v, dec_lo,     \
                        dec_hi, sep_lo, sep_hi, dsums, dcounts, changed);                        \
    break;
        switch (d) {
        case 1: FAST_LOOP(1)
        case 2: FAST_LOOP(2)
        case 3: FAST_LOOP(3)
        case 4: FAST_LOOP(4)
        case 5: FAST_LOOP(5)
        case 6: FAST_LOOP(6)
        case 7: FAST_LOOP(7)
        default: FAST_LOOP(8)
        }
#undef FAST_LOOP
    }
}

/* acc[q] += |x_q - c[label_q]|^2 (float64) over m points from ``start`` (m a multiple of 16): the
 * portable add_sqdist with each centre coordinate looked up in a register (K <= 16) instead of
 * blended in cluster by cluster. Each point's sum runs over the features in the same order, so
 * the inertia is the same bits. */
AVX512_FN static void add_sqdist_fast(const float *restrict XT, Py_ssize_t n, int d,
                                      Py_ssize_t start, Py_ssize_t m,
                                      const double *restrict centers, int k,
                                      const int32_t *restrict labels, double *restrict acc)
{
    double table[MAX_FIXED_D][FAST_MAX_K] = {{0}};
    for (int f = 0; f < d; f++)
        for (int j = 0; j < k; j++)
            table[f][j] = centers[(Py_ssize_t)j * d + f];
    for (Py_ssize_t q0 = 0; q0 < m; q0 += 16) {
        __m512i lab = _mm512_loadu_si512((const void *)(labels + start + q0));
        __m512i idx[2] = {_mm512_cvtepi32_epi64(_mm512_castsi512_si256(lab)),
                          _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(lab, 1))};
        __m512d sum[2] = {_mm512_loadu_pd(acc + q0), _mm512_loadu_pd(acc + q0 + 8)};
        for (int f = 0; f < d; f++) {
            __m512 x = _mm512_loadu_ps(XT + f * n + start + q0);
            __m512d lo = _mm512_loadu_pd(table[f]), hi = _mm512_loadu_pd(table[f] + 8);
            __m512d xd[2] = {_mm512_cvtps_pd(_mm512_castps512_ps256(x)),
                             _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1))};
            for (int h = 0; h < 2; h++) {
                __m512d t = _mm512_sub_pd(xd[h], _mm512_permutex2var_pd(lo, idx[h], hi));
                sum[h] = _mm512_add_pd(sum[h], _mm512_mul_pd(t, t));
            }
        }
        _mm512_storeu_pd(acc + q0, sum[0]);
        _mm512_storeu_pd(acc + q0 + 8, sum[1]);
    }
}

#endif
