/* Mean-shift of every pixel of a three-channel image in the joint spatial-range domain: the C
 * twin of _meanshift_image_numba (modes3 and its inlined _pixel3, _block, _basin, _store), with
 * the same window, weights, stopping rule and EDISON speed-ups. The numba kernel sums each block
 * of sixteen lanes into float64 totals (and reassociates, fastmath); here each lane keeps its own
 * float32 sums over the whole window, reduced once per step, so the modes agree to float32
 * rounding, not to the bit. Included by _ckernels.c. */

#define MS_BLOCK 16   /* columns per block: _meanshift_image_kernels.BLOCK */
#define MS_BAND 16    /* rows per task with a speed-up: _meanshift_image_kernels.BAND */
#define MS_BASIN 0.5  /* EDISON's TC_DIST_FACTOR */
#define MS_NEAR 0.02  /* speed-up 2: window points this near in colour join the path */

typedef struct {
    const float *R;       /* (3, h, wp) range features / bandwidth, padded columns */
    Py_ssize_t h, w, wp, pad;
    double hs, support, tol, bright;
    int max_iter;
    const double *rscale2; /* (3,) */
    double *modes;         /* (h, w, 5): y, x, r0, r1, r2 */
    int64_t *n_iter;       /* (h, w) */
} Climb;

static ALWAYS_INLINE float ms_weight(int kernel, float dr2, float ds2, float sup2, float rs2,
                                     double inv_hs2)
{
    float v;
    if (kernel == 0)
        v = 1.0f;
    else if (kernel == 1)
        v = (1.0f - ds2 * (float)inv_hs2) * (1.0f - dr2);
    else
        v = (float)exp(-0.5 * (ds2 * inv_hs2 + dr2));
    return (dr2 < sup2) & (ds2 < rs2) ? v : 0.0f;
}

/* Per-lane sums over a window, in float32 (one SIMD register each): weights, weights times the
 * row and column offsets from the window's corner (small numbers, so float32 keeps them), and
 * weights times each colour. Reduced to float64 once per step (ms_total). */
typedef struct {
    float w[MS_BLOCK], y[MS_BLOCK], x[MS_BLOCK], r0[MS_BLOCK], r1[MS_BLOCK], r2[MS_BLOCK];
} Lanes;

/* One block of MS_BLOCK columns of three window rows a, b, c, added to the lane sums; with
 * speed-up 2 each lane's colour distance (inf outside the window) goes to near. */
static ALWAYS_INLINE void ms_block(const float *const rows[3][3], float dx0, float ox0,
                                   const float dy[3], const float oy[3], const float cf[3],
                                   float lwf, int kernel, float sup2f, float rs2f, double inv_hs2,
                                   int speedup, float near[3][MS_BLOCK], Lanes *restrict L)
{
    for (int q = 0; q < MS_BLOCK; q++) {
        float dx = dx0 + (float)q, dx2 = dx * dx, uq[3];
        for (int r = 0; r < 3; r++) {
            float t0 = rows[r][0][q] - cf[0], t1 = rows[r][1][q] - cf[1],
                  t2 = rows[r][2][q] - cf[2];
            float e = lwf * t0 * t0;
            e += t1 * t1;
            e += t2 * t2;
            uq[r] = ms_weight(kernel, e, dy[r] + dx2, sup2f, rs2f, inv_hs2);
            if (speedup == 2)
                near[r][q] = uq[r] > 0 ? e : INFINITY;
        }
        float wq = uq[0] + uq[1] + uq[2];
        L->w[q] += wq;
        L->y[q] += uq[0] * oy[0] + uq[1] * oy[1] + uq[2] * oy[2];
        L->x[q] += wq * (ox0 + (float)q);
        L->r0[q] += uq[0] * rows[0][0][q] + uq[1] * rows[1][0][q] + uq[2] * rows[2][0][q];
        L->r1[q] += uq[0] * rows[0][1][q] + uq[1] * rows[1][1][q] + uq[2] * rows[2][1][q];
        L->r2[q] += uq[0] * rows[0][2][q] + uq[1] * rows[1][2][q] + uq[2] * rows[2][2][q];
    }
}

static ALWAYS_INLINE double ms_total(const float *lane)
{
    double total = 0.0;
    for (int q = 0; q < MS_BLOCK; q++)
        total += lane[q];
    return total;
}

static ALWAYS_INLINE Py_ssize_t ms_near(float dr2, Py_ssize_t y, Py_ssize_t x, Py_ssize_t lo,
                                        Py_ssize_t hi, Py_ssize_t w, uint8_t *table,
                                        int64_t *plist, Py_ssize_t npts)
{
    if ((double)dr2 < MS_NEAR && y >= lo && y < hi && table[(y - lo) * w + x] == 0) {
        table[(y - lo) * w + x] = 2;
        plist[npts++] = y * w + x;
    }
    return npts;
}

/* EDISON's basin of attraction: returns 1 (the climb ends at a known mode, copied into c) or 0;
 * a near pixel under the window with no mode yet joins the path. */
static ALWAYS_INLINE int ms_basin(const Climb *K, Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t lo,
                                  Py_ssize_t hi, double c[5], uint8_t *table, int64_t *plist,
                                  Py_ssize_t *npts)
{
    Py_ssize_t my = (Py_ssize_t)(c[0] + 0.5), mx = (Py_ssize_t)(c[1] + 0.5);
    if (my >= lo && my < hi && mx >= 0 && mx < K->w && (my != y0 || mx != x0)) {
        uint8_t state = table[(my - lo) * K->w + mx];
        const float *R = K->R;
        Py_ssize_t at = my * K->wp + mx + K->pad, plane = K->h * K->wp;
        double d0 = R[at] - c[2], d1 = R[plane + at] - c[3], d2 = R[2 * plane + at] - c[4];
        if (state != 2 && d0 * d0 + d1 * d1 + d2 * d2 < MS_BASIN) {
            if (state == 0) {
                table[(my - lo) * K->w + mx] = 2;
                plist[(*npts)++] = my * K->w + mx;
            } else {
                for (int f = 0; f < 5; f++)
                    c[f] = K->modes[(my * K->w + mx) * 5 + f];
                return 1;
            }
        }
    }
    return 0;
}

static ALWAYS_INLINE void ms_store(const Climb *K, Py_ssize_t y0, Py_ssize_t x0, Py_ssize_t lo,
                                   const double c[5], int it, uint8_t *table,
                                   const int64_t *plist, Py_ssize_t npts)
{
    double *m = K->modes + (y0 * K->w + x0) * 5;
    for (int f = 0; f < 5; f++)
        m[f] = c[f];
    K->n_iter[y0 * K->w + x0] = it;
    for (Py_ssize_t k = 0; k < npts; k++) { /* the pixels collected on the way share the mode */
        Py_ssize_t p = plist[k];
        for (int f = 0; f < 5; f++)
            K->modes[p * 5 + f] = m[f];
        K->n_iter[p] = 0;
        table[(p / K->w - lo) * K->w + p % K->w] = 1;
    }
}

/* The climb of pixel (y0, x0); returns how many pixels it collected (they share its mode). */
static ALWAYS_INLINE Py_ssize_t ms_pixel(const Climb *K, int kernel, int speedup, Py_ssize_t y0,
                                         Py_ssize_t x0, uint8_t *table, int64_t *plist,
                                         Py_ssize_t lo, Py_ssize_t hi, float near[3][MS_BLOCK])
{
    const float *R = K->R;
    Py_ssize_t h = K->h, plane = K->h * K->wp;
    double rs = K->support * K->hs, rs2 = rs * rs, sup2 = K->support * K->support;
    double inv_hs2 = 1.0 / (K->hs * K->hs), tol2 = K->tol * K->tol;
    const double *q = K->rscale2;
    Py_ssize_t at = y0 * K->wp + x0 + K->pad;
    double c[5] = {(double)y0, (double)x0, R[at], R[plane + at], R[2 * plane + at]};
    Py_ssize_t npts = 0;
    int it = 0;
    while (it < K->max_iter) {
        it++;
        Py_ssize_t ylo = (Py_ssize_t)ceil(c[0] - rs), yhi = (Py_ssize_t)floor(c[0] + rs);
        ylo = ylo > 0 ? ylo : 0;
        yhi = yhi < h - 1 ? yhi : h - 1;
        Py_ssize_t xs = (Py_ssize_t)floor(c[1] - rs), xe = (Py_ssize_t)floor(c[1] + rs);
        float lwf = c[2] > K->bright ? 4.0f : 1.0f;
        Lanes L;
        memset(&L, 0, sizeof L);
        float cf[3] = {(float)c[2], (float)c[3], (float)c[4]};
        float sup2f = (float)sup2, rs2f = (float)rs2;
        for (Py_ssize_t ya = ylo; ya <= yhi; ya += 3) {
            /* rows past the window are read again but weigh nothing */
            Py_ssize_t yb = ya + 1 < yhi ? ya + 1 : yhi, yc = ya + 2 < yhi ? ya + 2 : yhi;
            float dy[3] = {(float)((ya - c[0]) * (ya - c[0])),
                           ya + 1 <= yhi ? (float)((yb - c[0]) * (yb - c[0])) : INFINITY,
                           ya + 2 <= yhi ? (float)((yc - c[0]) * (yc - c[0])) : INFINITY};
            float oy[3] = {(float)(ya - ylo), (float)(yb - ylo), (float)(yc - ylo)};
            Py_ssize_t ys[3] = {ya, yb, yc};
            for (Py_ssize_t xb = xs; xb <= xe; xb += MS_BLOCK) {
                const float *rows[3][3];
                for (int r = 0; r < 3; r++)
                    for (int ch = 0; ch < 3; ch++)
                        rows[r][ch] = R + ch * plane + ys[r] * K->wp + K->pad + xb;
                ms_block(rows, (float)(xb - c[1]), (float)(xb - xs), dy, oy, cf, lwf, kernel,
                         sup2f, rs2f, inv_hs2, speedup, near, &L);
                if (speedup == 2) /* window points of very similar colour join the path */
                    for (int k = 0; k < MS_BLOCK; k++)
                        for (int r = 0; r < 3; r++)
                            npts = ms_near(near[r][k], ys[r], xb + k, lo, hi, K->w, table, plist,
                                           npts);
            }
        }
        double sw = ms_total(L.w);
        double sy = ms_total(L.y) + sw * (double)ylo, sx = ms_total(L.x) + sw * (double)xs;
        double s0 = ms_total(L.r0), s1 = ms_total(L.r1), s2 = ms_total(L.r2);
        if (sw <= 0.0)
            break;
        double n[5] = {sy / sw, sx / sw, s0 / sw, s1 / sw, s2 / sw}, shift2;
        if (it == 1) { /* EDISON measures the first step in bandwidths, the later ones in units */
            shift2 = ((n[0] - c[0]) * (n[0] - c[0]) + (n[1] - c[1]) * (n[1] - c[1])) * inv_hs2;
            for (int f = 2; f < 5; f++)
                shift2 += (n[f] - c[f]) * (n[f] - c[f]);
        } else {
            shift2 = (n[0] - c[0]) * (n[0] - c[0]) + (n[1] - c[1]) * (n[1] - c[1]);
            for (int f = 2; f < 5; f++)
                shift2 += (n[f] - c[f]) * (n[f] - c[f]) * q[f - 2];
        }
        for (int f = 0; f < 5; f++)
            c[f] = n[f];
        if (shift2 < tol2)
            break;
        if (speedup > 0 && ms_basin(K, y0, x0, lo, hi, c, table, plist, &npts))
            break;
    }
    ms_store(K, y0, x0, lo, c, it, table, plist, npts);
    return npts;
}

/* Bands [b_lo, b_hi) of rows (MS_BAND rows each with a speed-up, else one), with the kernel and
 * speed-up constant so that each of the nine instances is compiled without their branches. */
static ALWAYS_INLINE void ms_bands(const Climb *K, int kernel, int speedup, uint8_t *table,
                                   int64_t *plist, Py_ssize_t b_lo, Py_ssize_t b_hi)
{
    Py_ssize_t band = speedup > 0 ? MS_BAND : 1;
    float near[3][MS_BLOCK];
    for (Py_ssize_t b = b_lo; b < b_hi; b++) {
        Py_ssize_t lo = b * band, hi = lo + band < K->h ? lo + band : K->h;
        memset(table, 0, (size_t)(band * K->w));
        for (Py_ssize_t y0 = lo; y0 < hi; y0++)
            for (Py_ssize_t x0 = 0; x0 < K->w; x0++) {
                if (speedup > 0 && table[(y0 - lo) * K->w + x0] == 1)
                    continue;
                ms_pixel(K, kernel, speedup, y0, x0, table, plist, lo, hi, near);
            }
    }
}

#define MS_INSTANCE(kernel, speedup)                                                          \
    SIMD_CLONES static void ms_bands_##kernel##_##speedup(                                    \
        const Climb *K, uint8_t *table, int64_t *plist, Py_ssize_t b_lo, Py_ssize_t b_hi)     \
    {                                                                                         \
        ms_bands(K, kernel, speedup, table, plist, b_lo, b_hi);                               \
    }
MS_INSTANCE(0, 0)
MS_INSTANCE(0, 1)
MS_INSTANCE(0, 2)
MS_INSTANCE(1, 0)
MS_INSTANCE(1, 1)
MS_INSTANCE(1, 2)
MS_INSTANCE(2, 0)
MS_INSTANCE(2, 1)
MS_INSTANCE(2, 2)

typedef void (*BandsFn)(const Climb *, uint8_t *, int64_t *, Py_ssize_t, Py_ssize_t);
static const BandsFn ms_instances[3][3] = {
    {ms_bands_0_0, ms_bands_0_1, ms_bands_0_2},
    {ms_bands_1_0, ms_bands_1_1, ms_bands_1_2},
    {ms_bands_2_0, ms_bands_2_1, ms_bands_2_2},
};
