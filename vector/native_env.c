/* vector/native_env.c: vector.env.step_state of a whole batch in one C call (see vector/native_env.py).
 *
 * One call does one env step of B books in place: it reads and rewrites the EnvState's
 * tensors (book, acct, episode, t, equity, mid; key is read only) and writes obs, reward,
 * truncated and the info tensors into the caller's buffers. Each book runs every phase of
 * the torch step in turn (vector.env.step_state: _cancel_and_decide, the book steps,
 * _account_and_reset), so no intermediate ever leaves the book's cache lines.
 *
 * The book transition is vector/native.c's own (included below: `decide_*`, what a command
 * does, and `apply_*`, its change to the rows in place, the two halves of its `book_*`),
 * run on the state's own rows: each book step writes only the slots that change (no copy
 * of whole rows, no fill row cleared), and its fills go into the accounts straight from
 * the rows before the change. So there is no second matching engine here. Everything else mirrors the
 * torch function cited at each part, with the same operations in the same order and
 * precision: float64 where torch computes in float64, float32 where a Python float meets an
 * integer tensor (torch's default dtype), round-half-to-even (nearbyint) for torch.round.
 * Build with -ffp-contract=off and without fast-math, so no operation is fused or reordered.
 *
 * Integer arithmetic is int64 (wrapping where torch's int64 would wrap); the book's dtype T
 * (int64_t or int32_t, the body below `#else`, included twice as native.c does) is only
 * the storage of the book, and the commands are narrowed into it as vector.book._command_in
 * narrows them (clamped; an order id or trader out of range flags `wide`).
 */
#ifndef VE_T

#include <math.h>
#include <stdlib.h>

#include "native.c" /* vb_params, vb_buffers, book_i64 / book_i32 (the book transition) */

#define VE_MAX_ACTIONS 8
#define VE_MAX_BUCKETS 16
#define VE_MAX_ROUNDS 64 /* 1 << _ROUND_BITS */
enum { VE_ROUND_BITS = 6 };

/* EnvParams (and the Consts values a step reads), as vector/native_env.py packs them. */
typedef struct {
    int64_t n_learners, market_making, n_owners, noise_owner, mm_owner, learner_rounds;
    int64_t capacity, tick, big;  /* big: the book dtype's max (Consts.big) */
    int64_t horizon_steps, max_position, max_open_orders, cancel_all, box_actions, n_actions;
    int64_t max_offset, quote_qty, depth, liquidation_cost, starting_cash;
    int64_t n_noise, noise_rounds, arrival_thr, cancel_thr, market_thr;  /* thresholds on 16 bits */
    int64_t noise_min_qty, noise_max_qty, depth_ticks, max_age_steps, noise_max_open;
    int64_t market_maker, max_inventory, mm_quote_qty, min_spread_ticks, post_only;
    int64_t warm_levels, ref_tick;
    int64_t nvec[VE_MAX_ACTIONS], buckets[VE_MAX_BUCKETS];
    double ref, warm_mark, skew, half_spread, size_scale, max_ticks, reward_scale, inventory_penalty;
    double half_default, two_tick;  /* cfg.max_ticks / 2, 2.0 * tick (Python floats) */
} ve_params;

/* Buffers of one call (one address each, in this order): the state tensors, in place; the
 * actions [B, N, n] (int64, or float64 for box actions); the outputs. */
typedef struct {
    void *price, *qty, *order_id, *owner;
    uint8_t *top;
    void *last_price;
    uint8_t *overflow;
    int64_t *acct;
    const int64_t *key;
    int64_t *episode, *t;
    double *equity, *mid;
    const void *action;
    float *obs, *reward;
    uint8_t *done;        /* truncated and info["_final_obs"] */
    int64_t *messages, *trades;
    void *rejected;       /* [B, N] bool (trading) or [B, 1] int64 (market making) */
    uint8_t *overflow_out;
    float *final_obs;
    const float *low, *high;
} ve_buffers;

/* ---- vector.background: SplitMix64, counter based -------------------------------------------- */
static const uint64_t VE_GOLDEN = 0x9E3779B97F4A7C15ull, VE_M1 = 0xBF58476D1CE4E5B9ull, VE_M2 = 0x94D049BB133111EBull;

/* background.mix64 (the logical shifts its masks make). */
static inline uint64_t ve_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= VE_M1;
    x ^= x >> 27;
    x *= VE_M2;
    return x ^ (x >> 31);
}

/* background.bits */
static inline uint64_t ve_rbits(int64_t key, int64_t counter) { return ve_mix64((uint64_t)key + (uint64_t)counter * VE_GOLDEN); }

/* background.field */
static inline int64_t ve_rfield(uint64_t b, int shift, int width) { return (int64_t)((b >> shift) & ((1ull << width) - 1)); }

/* background.uniform_int */
static inline int64_t ve_runiform(uint64_t b, int shift, int64_t lo, int64_t hi, int width)
{
    return lo + ((ve_rfield(b, shift, width) * (hi - lo + 1)) >> width);
}

/* env.counter: ((episode << 24) + t) << _ROUND_BITS, wrapping. */
static inline int64_t ve_env_counter(int64_t episode, int64_t t)
{
    return (int64_t)((((uint64_t)episode << 24) + (uint64_t)t) << VE_ROUND_BITS);
}

/* v / tick as a double (torch's true division by the tick): v itself where tick is 1, as
 * the division would give it. */
static inline double ve_per_tick(const ve_params *p, double v) { return p->tick == 1 ? v : v / (double)p->tick; }

static inline int64_t ve_abs64(int64_t a) { return a < 0 ? (int64_t)(0 - (uint64_t)a) : a; }

/* floor division by d > 0 (torch's // on integers) */
static inline int64_t ve_fdiv(int64_t a, int64_t d) { return d == 1 ? a : floor_div(a, d); }

/* torch.minimum / torch.maximum of floats (NaN propagates). */
static inline float ve_fmin_t(float a, float b) { return isnan(a) || isnan(b) ? NAN : (a < b ? a : b); }
static inline float ve_fmax_t(float a, float b) { return isnan(a) || isnan(b) ? NAN : (a > b ? a : b); }

/* The obs length per learner: 4 * depth + 8 (envs.observation). */
static inline int64_t ve_obs_size(const ve_params *p) { return 4 * p->depth + 8; }

/* observe's / _warm_obs's last line: the float64 features as float32, clipped to the bounds. */
static void ve_store_obs(const double *x, int64_t f, const float *low, const float *high, int nan_bounds, float *out)
{
    if (nan_bounds) {
        for (int64_t k = 0; k < f; k++)
            out[k] = ve_fmax_t(ve_fmin_t((float)x[k], high[k]), low[k]);
        return;
    }
    /* the same without a NaN bound (branch free): ve_fmin_t(a, b) is then !(a >= b) ? a : b
     * (a NaN stays NaN, made the NAN ve_fmin_t gives), ve_fmax_t(a, b) a > b ? a : b */
    for (int64_t k = 0; k < f; k++) {
        const float a = (float)x[k], h = high[k], l = low[k];
        const float m = !(a >= h) ? a : h;
        out[k] = m > l ? m : m == m ? l : NAN;
    }
}

/* Whether a bound of the observation is NaN (then ve_store_obs takes the general path). */
static int ve_nan_bounds(const float *low, const float *high, int64_t f)
{
    for (int64_t k = 0; k < f; k++)
        if (isnan(low[k]) || isnan(high[k]))
            return 1;
    return 0;
}

/* env.action_indices of one learner's action (row `a` of n components): 0 if out of the
 * action space (the torch env would index out of range or act on nonsense). */
static int ve_action_index(const ve_params *p, const void *action, int64_t row, int64_t *idx)
{
    const int64_t n = p->n_actions;
    for (int64_t k = 0; k < n; k++) {
        if (p->box_actions) {
            const double a = ((const double *)action)[row * n + k];
            const double nv = (double)p->nvec[k];
            const double x = floor((a + 1.0) * 0.5 * nv);
            if (isnan(x))
                return 0;
            int64_t i = x < 0 ? 0 : x > 1e18 ? INT64_MAX : (int64_t)x;
            idx[k] = i < p->nvec[k] - 1 ? i : p->nvec[k] - 1;
        } else {
            idx[k] = ((const int64_t *)action)[row * n + k];
            if (idx[k] < 0 || idx[k] >= p->nvec[k])
                return 0;
        }
    }
    return 1;
}

#define VE_T int64_t
#define VE_SUFFIX _i64
#include "native_env.c" /* this file again, VE_T defined */
#undef VE_T
#undef VE_SUFFIX

#define VE_T int32_t
#define VE_SUFFIX _i32
#include "native_env.c" /* this file again, VE_T defined */
#undef VE_T
#undef VE_SUFFIX

#else /* ---- one env step over a book of state dtype T (included twice from above) ------------ */

#define T VE_T
#define FN(name) VB_CAT(name, VE_SUFFIX)

/* One thread's scratch: the fills of a book step and per-owner tallies. */
typedef struct {
    T *fill;         /* [N] */
    int64_t *levels; /* [2, depth]: one side's levels (FN(ve_observe)) */
    int64_t *own;    /* per-owner tallies, 12 x n_owners (see FN(ve_env_book)) */
    int nan_bounds;  /* a bound of the observation is NaN (ve_store_obs) */
} FN(ve_scratch);

static FN(ve_scratch) *FN(ve_scratch_new)(int64_t n, int64_t owners, int64_t depth)
{
    FN(ve_scratch) *s = calloc(1, sizeof *s);
    T *fill = calloc((size_t)n, sizeof(T));
    int64_t *own = malloc(sizeof(int64_t) * (size_t)(12 * owners));
    int64_t *levels = malloc(sizeof(int64_t) * (size_t)(2 * depth + 2));
    if (!s || !fill || !own || !levels) {
        free(s);
        free(fill);
        free(own);
        free(levels);
        return NULL;
    }
    s->fill = fill;
    s->own = own;
    s->levels = levels;
    return s;
}

static void FN(ve_scratch_free)(FN(ve_scratch) *s)
{
    if (s) {
        free(s->fill);
        free(s->own);
        free(s->levels);
        free(s);
    }
}

/* The book of one env, stepped in place: the state's rows (price, qty, order id, owner;
 * each [2, N]) and the rest of the book's state, with each row's live orders and a bound
 * on its order ids kept as it goes. */
typedef struct {
    T *fld[4];
    int64_t live[2];
    uint8_t top[2], ovf;
    int64_t last;
    int64_t max_id;  /* no live order has an id above it */
} FN(ve_book);

/* T narrowing of one int64 command field, as vector.book._command_in (clamped into T). */
static inline int64_t FN(ve_narrow)(int64_t v)
{
    const int64_t hi = sizeof(T) == 8 ? INT64_MAX : INT32_MAX, lo = sizeof(T) == 8 ? INT64_MIN : INT32_MIN;
    return v < lo ? lo : v > hi ? hi : v;
}

/* One vector.book.step of the book with one command (`cmd`: kind, order id, trader, side,
 * qty, price, type, tif), in place: native.c's FN(decide) on the book as it stands, the
 * fills into the accounts (env.apply_fills: the taker gains side x lots and pays side x
 * notional, each maker the opposite; int64, wrapping, so the sum is the same in any
 * order), then native.c's FN(apply). The order id is looked up (DUPLICATE_ORDER_ID) only
 * where it is not above every live id: env order ids grow within a step and from step to
 * step, so the scan is almost never needed, and the check stays exact for any state.
 * Returns 0 for a NONE command, which leaves the book as it is and trades nothing (the
 * torch step's status NONE: no refusal applies to it), without a book step. */
static int FN(ve_book_step)(FN(ve_book) *bk, T *fill, const vb_params *bp, const int64_t cmd[8], int post_only,
                            int64_t *acct, int64_t *flow, int64_t *trades)
{
    if (cmd[0] == K_NONE)
        return 0;
    const int64_t n = bp->capacity;
    const int64_t hi = sizeof(T) == 8 ? INT64_MAX : INT32_MAX, lo = sizeof(T) == 8 ? INT64_MIN : INT32_MIN;
    const vb_cmd c = {
        .kind = FN(ve_narrow)(cmd[0]), .order_id = FN(ve_narrow)(cmd[1]), .trader = FN(ve_narrow)(cmd[2]),
        .side = FN(ve_narrow)(cmd[3]), .qty = FN(ve_narrow)(cmd[4]), .price = FN(ve_narrow)(cmd[5]),
        .type = FN(ve_narrow)(cmd[6]), .tif = FN(ve_narrow)(cmd[7]), .post_only = post_only != 0,
        .wide = cmd[1] < lo || cmd[1] > hi || cmd[2] < lo || cmd[2] > hi,
    };
    int hit_row = BID, found = 0;
    int64_t hit_slot = 0;
    if ((c.kind == K_NEW || c.kind == K_CANCEL) && c.order_id <= bk->max_id)
        found = FN(find)(bk->fld[2], n, bk->live, c.order_id, &hit_row, &hit_slot);
    const T *const old[4] = {bk->fld[0], bk->fld[1], bk->fld[2], bk->fld[3]};
    vb_move mv;
    FN(decide)(bp, &c, old, bk->live, bk->top, bk->last, found, hit_row, hit_slot, fill, &mv);

    const int64_t trader = cmd[2], side = cmd[3];
    const T *mp = bk->fld[0] + mv.wr * n, *mo = bk->fld[3] + mv.wr * n;  /* the makers, before the step */
    for (int64_t j = 0; j < mv.reach; j++) {
        const int64_t q = fill[j];
        if (q == 0)
            continue;
        const int64_t maker = mo[j];
        const int64_t lots = wmul(side, q), cash = wmul(lots, mp[j]);
        acct[2 * maker] = wsub(acct[2 * maker], lots);
        acct[2 * maker + 1] = wadd(acct[2 * maker + 1], cash);
        acct[2 * trader] = wadd(acct[2 * trader], lots);
        acct[2 * trader + 1] = wsub(acct[2 * trader + 1], cash);
        *flow = wadd(*flow, lots);
        *trades += 1;
    }

    const int64_t order[4] = {mv.limit, mv.rem, c.order_id, c.trader};
    FN(apply)(bp, bk->fld, bk->live, &mv, fill, order);
    bk->top[0] = mv.top[0];
    bk->top[1] = mv.top[1];
    bk->last = mv.last;
    bk->ovf = bk->ovf || mv.capacity;
    if (mv.rest && c.order_id > bk->max_id)
        bk->max_id = c.order_id;
    return 1;
}

/* env._mark of a book (rows price/qty [2, N]): mid, else last trade, else the reference. */
static double FN(ve_mark)(const T *price, const T *qty, int64_t n, int64_t last, double ref)
{
    if (qty[0] > 0 && qty[n] > 0)
        return (double)(price[0] + (int64_t)price[n]) * 0.5;
    return last > 0 ? (double)last : ref;
}

/* env.observe for one book (levels from vector.book.levels), every learner's row. */
static void FN(ve_observe)(const ve_params *p, const T *price, const T *qty, const int64_t live[2], double mark,
                        double mid_prev, int64_t flow, const int64_t *acct, int64_t t, const int64_t *open, const float *low,
                        const float *high, int nan_bounds, int64_t *levels, double *x, float *out)
{
    const int64_t n = p->capacity, L = p->depth, F = ve_obs_size(p);
    const double D = p->max_ticks;
    int64_t top_p[2] = {0, 0}, top_q[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        const T *rp = price + r * n, *rq = qty + r * n;
        const double sign = r == 0 ? -1.0 : 1.0;
        /* the first L levels: runs of one price among the live orders (one pass, no branch
         * per level) */
        int64_t *lp = levels, *lq = levels + L;
        for (int64_t l = 0; l < L; l++)
            lp[l] = lq[l] = 0;
        int64_t l = -1, prev = 0;
        for (int64_t j = 0; j < live[r]; j++) {
            const int64_t price_j = rp[j];
            l += j == 0 || price_j != prev;
            if (l >= L)
                break;
            lp[l] = price_j;
            lq[l] += rq[j];
            prev = price_j;
        }
        top_p[r] = L > 0 ? lp[0] : 0;
        top_q[r] = L > 0 ? lq[0] : 0;
        for (int64_t k = 0; k < L; k++) {
            const double v = ve_per_tick(p, ((double)lp[k] - mark) * sign);
            x[r * 2 * L + 2 * k] = lq[k] > 0 ? v : D;
            x[r * 2 * L + 2 * k + 1] = (double)lq[k] / p->size_scale;
        }
    }
    const double bq = (double)top_q[0], aq = (double)top_q[1];
    const int both = bq > 0 && aq > 0;
    const float spread = both ? (float)(top_p[1] - top_p[0]) / (float)p->tick : (float)D;
    const double tot = bq + aq;
    double *m = x + 4 * L;
    m[0] = (double)spread;
    m[1] = ve_per_tick(p, mark - mid_prev);
    m[2] = (double)flow / p->size_scale;
    m[3] = tot > 0 ? (bq - aq) / (tot < 1.0 ? 1.0 : tot) : 0.0;
    double left = 1.0 - (double)t / (double)p->horizon_steps;
    left = left < 0.0 ? 0.0 : left;
    for (int64_t i = 0; i < p->n_learners; i++) {
        const int64_t pos = acct[2 * i], cash = acct[2 * i + 1];
        const double equity = (double)cash + (double)pos * mark;
        double *a = x + 4 * L + 4;
        a[0] = (double)pos / (double)p->max_position;
        a[1] = ve_per_tick(p, equity - (double)p->starting_cash) / p->reward_scale;
        a[2] = (double)open[i] / (double)p->max_open_orders;
        a[3] = left;
        ve_store_obs(x, F, low, high, nan_bounds, out + i * F);
    }
}

/* env._warm_qty: the starting ladder's sizes ([2, W], 1..10 lots) of an episode. */
static void FN(ve_warm_qty)(const ve_params *p, int64_t key, int64_t episode, int64_t *q)
{
    const int64_t W = p->warm_levels, ctr = ve_env_counter(episode, 0);
    for (int64_t d = 0; d < 2 * W; d++) {
        const uint64_t word = ve_rbits(key, ctr + VE_MAX_ROUNDS - 1 - d / 4);
        q[d] = ve_runiform(word, 16 * (int)(d % 4), 1, 10, 16);
    }
}

/* env._warm_book into the state rows of one book (Consts.warm_price / warm_oid / warm_owner). */
static void FN(ve_write_warm_book)(const ve_params *p, const vb_params *bp, const int64_t *q, T *const out[4])
{
    const int64_t n = p->capacity, W = p->warm_levels;
    for (int r = 0; r < 2; r++)
        for (int64_t k = 0; k < n; k++) {
            const int64_t at = r * n + k;
            if (k < W) {
                out[0][at] = (T)((r == 0 ? p->ref_tick - 1 - k : p->ref_tick + 1 + k) * p->tick);
                out[1][at] = (T)q[r * W + k];
                out[2][at] = (T)(r == 0 ? 1 + k : 1 + W + k);
                out[3][at] = (T)(p->noise_owner + k % p->n_noise);
            } else {
                out[0][at] = (T)(r == 0 ? 0 : bp->empty_ask);
                out[1][at] = out[2][at] = out[3][at] = 0;
            }
        }
}

/* env._warm_obs: the first observation of an episode starting from the ladder `q`. */
static void FN(ve_warm_obs)(const ve_params *p, const int64_t *q, const float *low, const float *high, int nan_bounds,
                            double *x, float *out)
{
    const int64_t L = p->depth, W = p->warm_levels, F = ve_obs_size(p), k = L < W ? L : W;
    const double tick = (double)p->tick, D = p->max_ticks;
    for (int r = 0; r < 2; r++) {
        const double sign = r == 0 ? -1.0 : 1.0;
        for (int64_t l = 0; l < L; l++) {
            double *v = x + r * 2 * L + 2 * l;
            if (l < k) {
                const int64_t lp = (r == 0 ? p->ref_tick - 1 - l : p->ref_tick + 1 + l) * p->tick;
                v[0] = (double)((float)lp - (float)p->warm_mark) * sign / tick;  /* (int tensor - float): float32 */
                v[1] = (double)q[r * W + l] / p->size_scale;
            } else {
                v[0] = D;
                v[1] = 0.0;
            }
        }
    }
    double *m = x + 4 * L;
    if (W) {
        const double bq = (double)q[0], aq = (double)q[W];
        m[0] = 2.0;
        m[3] = (bq - aq) / (bq + aq);
    } else {
        m[0] = D;
        m[3] = 0.0;
    }
    m[1] = m[2] = 0.0;
    double *a = m + 4;
    a[0] = a[1] = a[2] = 0.0;
    a[3] = 1.0;
    for (int64_t i = 0; i < p->n_learners; i++)
        ve_store_obs(x, F, low, high, nan_bounds, out + i * F);
}

/* env._mm_quote: the maker's wanted quote (row, price, qty, valid) on the book before the
 * cancels (`price`, `qty`, `owner` [2, N]). */
static void FN(ve_mm_quote)(const ve_params *p, const T *price, const T *qty, const T *owner, int64_t last,
                         int64_t inventory, int64_t t, int64_t *row, int64_t *quote, int64_t *qty_out, int *valid)
{
    const int64_t n = p->capacity, tick = p->tick;
    int shows[2] = {0, 0};
    int64_t best[2];
    for (int r = 0; r < 2; r++) {
        int64_t first = 0;  /* argmax of others: the first such slot, else 0 */
        for (int64_t j = 0; j < n && qty[r * n + j] > 0; j++)
            if (owner[r * n + j] != p->mm_owner) {
                first = j;
                shows[r] = 1;
                break;
            }
        best[r] = price[r * n + first];
    }
    const int64_t bb = best[0], ba = best[1];
    const int hb = shows[0], ha = shows[1];
    double s0;
    if (hb && ha)
        s0 = (double)(bb + ba) * 0.5;
    else
        s0 = last > 0 ? (double)last : hb ? (double)bb : ha ? (double)ba : p->ref;
    const double s = ve_per_tick(p, s0);
    const double r = s - (double)inventory * p->skew;
    int64_t bid_t = (int64_t)floor(r - p->half_spread + 1e-9);
    int64_t ask_t = (int64_t)ceil(r + p->half_spread - 1e-9);
    if (p->min_spread_ticks > 1) {
        int64_t short_ = p->min_spread_ticks - (ask_t - bid_t);
        short_ = short_ < 0 ? 0 : short_;
        const int64_t odd = short_ - 2 * ve_fdiv(short_, 2);
        bid_t = bid_t - ve_fdiv(short_, 2) - (inventory >= 0 ? odd : 0);
        ask_t = ask_t + ve_fdiv(short_, 2) + (inventory < 0 ? odd : 0);
    }
    if (ha)
        bid_t = min64(bid_t, ve_fdiv(ba, tick) - 1);
    if (hb)
        ask_t = max64(ask_t, ve_fdiv(bb, tick) + 1);
    ask_t = ask_t < 1 ? 1 : ask_t;
    const int is_bid = t - 2 * ve_fdiv(t, 2) == 1;
    *row = is_bid ? BID : ASK;
    const int64_t qt = is_bid ? bid_t : ask_t;
    int64_t q = is_bid ? p->max_inventory - inventory : p->max_inventory + inventory;
    q = q > p->mm_quote_qty ? p->mm_quote_qty : q;
    *valid = q > 0 && qt >= 1;
    *quote = qt * tick;
    *qty_out = q < 0 ? 0 : q;
}

/* env._quotes: the market-making learner's decision on the book it observed: wanted prices
 * (rows BID, ASK), which of its sides are stale, placed, and its rejected count and messages. */
static void FN(ve_learner_quotes)(const ve_params *p, const T *price, const T *qty, const T *owner, double mid,
                               int64_t position, const int64_t idx[2], int64_t want[2], int stale[2], int place[2],
                               int64_t *rejected, int64_t *messages)
{
    const int64_t n = p->capacity, tick = p->tick;
    int shows[2] = {0, 0}, has[2], fresh[2];
    int64_t best[2], count[2] = {0, 0}, psum[2] = {0, 0}, qsum[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        int64_t first = -1;
        for (int64_t j = 0; j < n && qty[r * n + j] > 0; j++) {
            if (owner[r * n + j] == 0) {
                count[r]++;
                psum[r] += price[r * n + j];
                qsum[r] += qty[r * n + j];
            } else if (first < 0) {
                first = j;
            }
        }
        shows[r] = first >= 0;
        best[r] = price[r * n + (first < 0 ? 0 : first)];
    }
    const int hb = shows[0], ha = shows[1];
    const int64_t bb = best[0], ba = best[1];
    const int64_t fallback = max64((int64_t)nearbyint(mid / (double)tick) * tick, tick);
    int64_t bid = (hb ? bb : ha ? ba - tick : fallback) - idx[0] * tick;
    bid = ha ? min64(bid, ba - tick) : bid;
    bid = bid < tick ? tick : bid;
    int64_t ask = (ha ? ba : hb ? bb + tick : fallback) + idx[1] * tick;
    ask = hb ? max64(ask, bb + tick) : ask;
    ask = ask < tick ? tick : ask;
    want[0] = bid;
    want[1] = ask;
    for (int r = 0; r < 2; r++) {
        has[r] = count[r] > 0;
        stale[r] = has[r] && (count[r] > 1 || psum[r] != want[r] || qsum[r] != p->quote_qty);
        fresh[r] = !has[r];
    }
    const int64_t working = count[0] + count[1];
    const int bid_ok = ve_abs64(position + p->quote_qty) <= p->max_position && working < p->max_open_orders;
    const int ask_ok = ve_abs64(position - p->quote_qty) <= p->max_position
        && working + (fresh[0] && bid_ok) < p->max_open_orders;
    const int allowed[2] = {bid_ok, ask_ok};
    *rejected = 0;
    *messages = 0;
    for (int r = 0; r < 2; r++) {
        place[r] = stale[r] || (fresh[r] && allowed[r]);
        *rejected += fresh[r] && !allowed[r];
        *messages += stale[r] || fresh[r];
    }
}

/* What phase 1 decides for a noise round, before its book step (env._cancel_and_decide). */
typedef struct {
    int arrives, ok, is_market;
    int64_t side, qty, off, order_id, trader;
} FN(ve_noise_plan);

/* One env step of book b (vector.env.step_state), in place. Returns 0, or 1 for an action
 * outside the action space. */
static int FN(ve_env_book)(const ve_buffers *io, const ve_params *p, const vb_params *bp, int64_t b, FN(ve_scratch) *s)
{
    const int64_t n = p->capacity, N = p->n_learners, O = p->n_owners, F = ve_obs_size(p);
    const int64_t tick = p->tick, LR = p->learner_rounds, R = p->noise_rounds;
    T *const sp[4] = {(T *)io->price + 2 * b * n, (T *)io->qty + 2 * b * n, (T *)io->order_id + 2 * b * n,
                      (T *)io->owner + 2 * b * n};
    uint8_t *const stop = io->top + 2 * b;
    int64_t *const acct = io->acct + 2 * b * O;
    const int64_t key = io->key[b], episode = io->episode[b], t0 = io->t[b], t = t0 + 1;
    const int64_t last0 = ((T *)io->last_price)[b];
    int64_t live0[2];  /* each row's live orders (a prefix) */

    /* per-owner tallies of the book before the step (env._cancel_and_decide: per_row, oldest;
     * the price and id sums are read for the maker only) */
    int64_t *open_qty = s->own, *open_cnt = open_qty + 2 * O, *oldest = open_cnt + 2 * O;
    int64_t *lo = oldest + O, *kid = lo + O, *pos = kid + O;
    int64_t mm_price[2] = {0, 0}, mm_oid[2] = {0, 0}, max_id = INT64_MIN;
    memset(open_qty, 0, sizeof(int64_t) * (size_t)(4 * O));
    for (int64_t o = 0; o < O; o++) {
        oldest[o] = p->big;
        lo[o] = 0;
        kid[o] = -1;
        pos[o] = acct[2 * o];
    }
    for (int r = 0; r < 2; r++) {
        int64_t *oq = open_qty + r * O, *oc = open_cnt + r * O;
        const T *rp = sp[0] + r * n, *rq = sp[1] + r * n, *ri = sp[2] + r * n, *ro = sp[3] + r * n;
        int64_t j = 0;
        for (; j < n && rq[j] > 0; j++) {
            const int64_t o = ro[j], id = ri[j];
            oq[o] += rq[j];
            oc[o] += 1;
            oldest[o] = id < oldest[o] ? id : oldest[o];
            max_id = id > max_id ? id : max_id;
            if (o == p->mm_owner) {
                mm_price[r] += rp[j];
                mm_oid[r] += id;
            }
        }
        live0[r] = j;
    }

    /* the learners' decisions: env.decode_actions (trading) or env._quotes (market making) */
    int64_t side[VE_MAX_ROUNDS], offset[VE_MAX_ROUNDS], lqty[VE_MAX_ROUNDS];
    int cancel[VE_MAX_ROUNDS];
    int64_t messages = 0, l_killed = 0, q_want[2] = {0, 0}, mm_rejected = 0;
    int q_stale[2] = {0, 0}, q_place[2] = {0, 0};
    for (int64_t i = 0; i < N; i++) {
        int64_t idx[VE_MAX_ACTIONS];
        if (!ve_action_index(p, io->action, b * N + i, idx))
            return 1;
        if (p->market_making) {
            FN(ve_learner_quotes)(p, sp[0], sp[1], sp[3], io->mid[b], acct[0], idx, q_want, q_stale, q_place, &mm_rejected,
                               &messages);
            continue;
        }
        side[i] = idx[0] - 1;
        offset[i] = idx[1] - p->max_offset;
        lqty[i] = p->buckets[idx[2]];
        cancel[i] = p->cancel_all && idx[3] == 1;
        const int64_t l_open = open_cnt[i] + open_cnt[O + i];
        messages += cancel[i] && l_open > 0;
        l_killed += cancel[i] ? l_open : 0;
        lo[i] = cancel[i] ? p->big : 0;
    }
    if (p->market_making)
        for (int r = 0; r < 2; r++)
            for (int64_t j = 0; j < live0[r]; j++)
                l_killed += q_stale[r] && sp[3][r * n + j] == 0;

    /* 1. the noise traders' cancels and decisions (env._cancel_and_decide) */
    const int64_t ctr = ve_env_counter(episode, t), nlo = p->noise_owner;
    FN(ve_noise_plan) plan[VE_MAX_ROUNDS];
    if (R) {
        int cap[VE_MAX_ROUNDS];
        for (int64_t k = 0; k < p->n_noise; k++)
            cap[k] = open_cnt[nlo + k] + open_cnt[O + nlo + k] >= p->noise_max_open;
        for (int64_t r = 0, rk = 0; r < R; r++, rk = rk + 1 == p->n_noise ? 0 : rk + 1) {  /* rk: r % n_noise */
            const uint64_t nb = ve_rbits(key, ctr + LR + 1 + r);
            const int arrive = ve_rfield(nb, 0, 16) < p->arrival_thr;
            const int64_t u_type = ve_rfield(nb, 16, 16);
            const int wants_cancel = arrive && u_type < p->cancel_thr;
            cap[rk] |= wants_cancel;
            FN(ve_noise_plan) *q = &plan[r];
            q->trader = nlo + rk;
            q->is_market = u_type >= p->cancel_thr && u_type < p->market_thr;
            q->side = 1 - 2 * ve_rfield(nb, 63, 1);
            q->qty = ve_runiform(nb, 32, p->noise_min_qty, p->noise_max_qty, 16);
            q->off = ve_runiform(nb, 48, 0, p->depth_ticks, 15);
            const int64_t pending = q->side > 0 ? open_qty[q->trader] : open_qty[O + q->trader];
            q->ok = ve_abs64(pos[q->trader] + q->side * (pending + q->qty)) <= p->max_position;
            q->arrives = arrive && !wants_cancel;
            q->order_id = (t << VE_ROUND_BITS) + LR + 1 + r;
        }
        for (int64_t k = 0; k < p->n_noise; k++) {
            kid[nlo + k] = cap[k] ? oldest[nlo + k] : -1;
            lo[nlo + k] = (int64_t)((uint64_t)(t - p->max_age_steps) << VE_ROUND_BITS);
        }
    }
    /* the maker's quote (env._mm_quote) and its stale quote */
    int64_t mm_cmd[8];
    int mm_place = 0;
    if (p->market_maker) {
        const int64_t mm = p->mm_owner;
        int64_t q_row, q_price, q_qty;
        int q_valid;
        FN(ve_mm_quote)(p, sp[0], sp[1], sp[3], last0, pos[mm], t, &q_row, &q_price, &q_qty, &q_valid);
        const int64_t cq = open_qty[q_row * O + mm], cn = open_cnt[q_row * O + mm];
        const int64_t cp = mm_price[q_row], ci = mm_oid[q_row];
        const int has = cn > 0;
        const int stale = has && (!q_valid || cp != q_price || cq > q_qty);
        kid[mm] = stale ? ci : -1;
        mm_place = q_valid && (!has || stale);
        messages += mm_place;
        const int64_t c[8] = {mm_place ? K_NEW : K_NONE, (t << VE_ROUND_BITS) + LR, mm, 1 - 2 * q_row, q_qty, q_price,
                              T_LIMIT, TIF_GTC};
        memcpy(mm_cmd, c, sizeof c);
    }

    /* env.remove_orders: one compaction of the kills, in place; from here on the state's rows
     * are the book, stepped in place */
    FN(ve_book) bk = {{sp[0], sp[1], sp[2], sp[3]}, {0, 0}, {0, 0}, io->overflow[b], last0, max_id};
    int64_t killed = 0;
    for (int r = 0; r < 2; r++) {
        int64_t k = 0;
        int kill0 = 0;
        for (int64_t j = 0; j < live0[r]; j++) {
            const int64_t at = r * n + j, o = sp[3][at], id = sp[2][at];
            const int kill = id < lo[o] || id == kid[o] || (p->market_making && o == 0 && q_stale[r]);
            if (kill) {
                killed++;
                kill0 |= j == 0;
                continue;
            }
            if (k != j)
                for (int f = 0; f < 4; f++)
                    sp[f][r * n + k] = sp[f][at];
            k++;
        }
        bk.live[r] = k;
        for (; k < live0[r]; k++) {
            sp[0][r * n + k] = (T)(r == ASK ? bp->empty_ask : 0);
            sp[1][r * n + k] = sp[2][r * n + k] = sp[3][r * n + k] = 0;
        }
        bk.top[r] = stop[r] && !kill0;
    }
    messages += killed - l_killed;

    /* 2. the learners' orders: env._trading_orders (priced from the touch after the cancels)
     *    or env._quote_commands */
    int64_t cmds[VE_MAX_ROUNDS][8];
    if (p->market_making) {
        for (int r = 0; r < 2; r++) {
            const int64_t c[8] = {q_place[r] ? K_NEW : K_NONE, (t << VE_ROUND_BITS) + r, 0, r == BID ? 1 : -1,
                                  p->quote_qty, q_want[r], T_LIMIT, TIF_GTC};
            memcpy(cmds[r], c, sizeof c);
        }
        ((int64_t *)io->rejected)[b] = mm_rejected;
    } else {
        const T *bp0 = sp[0], *bq0 = sp[1];
        const int hb = bq0[0] > 0, ha = bq0[n] > 0;
        const int64_t bid0 = bp0[0], ask0 = bp0[n];
        const double mark = FN(ve_mark)(bp0, bq0, n, last0, p->ref);
        const int64_t fallback = max64((int64_t)nearbyint(ve_per_tick(p, mark)) * tick, tick);
        int64_t kind[VE_MAX_ROUNDS], l_price[VE_MAX_ROUNDS];
        uint8_t *rej = (uint8_t *)io->rejected + b * N;
        for (int64_t i = 0; i < N; i++) {
            const int buy = side[i] > 0;
            const int64_t base = (buy ? ha : hb) ? (buy ? ask0 : bid0) : fallback;
            l_price[i] = max64(base + side[i] * offset[i] * tick, tick);
            const int64_t pending = cancel[i] ? 0 : buy ? open_qty[i] : open_qty[O + i];
            const int64_t working = cancel[i] ? 0 : open_cnt[i] + open_cnt[O + i];
            const int allowed = ve_abs64(pos[i] + side[i] * (pending + lqty[i])) <= p->max_position
                && working < p->max_open_orders;
            const int sends = side[i] != 0;
            rej[i] = sends && !allowed;
            kind[i] = sends && allowed ? K_NEW : K_NONE;
            messages += sends;
        }
        for (int64_t r = 0; r < N; r++) {
            const int64_t i = N == 1 ? 0 : (r + t0) % N;
            const int64_t c[8] = {kind[i], (t << VE_ROUND_BITS) + r, i, side[i] > 0 ? 1 : -1, lqty[i], l_price[i],
                                  T_LIMIT, TIF_GTC};
            memcpy(cmds[r], c, sizeof c);
        }
    }

    /* the book steps: the learners', the maker's, the noise rounds' (env.step_state), each
     * one's fills into the accounts at once (env.apply_fills) */
    int64_t flow = 0, trades = 0;
    for (int64_t r = 0; r < LR; r++)
        FN(ve_book_step)(&bk, s->fill, bp, cmds[r], 0, acct, &flow, &trades);
    if (p->market_maker)
        FN(ve_book_step)(&bk, s->fill, bp, mm_cmd, (int)p->post_only, acct, &flow, &trades);
    for (int64_t r = 0; r < R; r++) {
        /* env._noise_order on the book as it stands */
        const FN(ve_noise_plan) *q = &plan[r];
        const T *cp = sp[0], *cq = sp[1];
        const int hb = cq[0] > 0, ha = cq[n] > 0;
        const int64_t bid0 = cp[0], ask0 = cp[n], last = bk.last;
        double ref;
        if (hb && ha)
            ref = (double)(bid0 + ask0) * 0.5;
        else
            ref = last > 0 ? (double)last : hb ? (double)bid0 : ha ? (double)ask0 : p->ref;
        const double x = ve_per_tick(p, ref) - (double)(q->side * q->off);
        const int64_t n_price = (int64_t)(q->side > 0 ? floor(x) : ceil(x)) * tick;
        const int go = q->arrives && (!q->is_market || (q->side > 0 ? ha : hb));
        messages += go;
        const int64_t c[8] = {go && q->ok ? K_NEW : K_NONE, q->order_id, q->trader, q->side, q->qty, n_price,
                              q->is_market ? T_MARKET : T_LIMIT, q->is_market ? TIF_IOC : TIF_GTC};
        FN(ve_book_step)(&bk, s->fill, bp, c, 0, acct, &flow, &trades);
    }

    /* 4. mark, reward, observation (env._account_and_reset) */
    T *const *cur = sp;
    const int64_t last = bk.last;
    const double mark = FN(ve_mark)(cur[0], cur[1], n, last, p->ref);
    const int done = t >= p->horizon_steps;
    const int both = cur[1][0] > 0 && cur[1][n] > 0;
    float half = 0.0f;
    if (p->liquidation_cost)
        half = both ? (float)(cur[0][n] - (int64_t)cur[0][0]) / (float)p->two_tick : (float)p->half_default;
    double *equity = io->equity + b * N;
    float *reward = io->reward + b * N;
    for (int64_t i = 0; i < N; i++) {
        const int64_t pl = acct[2 * i], cl = acct[2 * i + 1];
        const double eq = (double)cl + (double)pl * mark;
        const double money = ve_per_tick(p, eq - equity[i]);
        float cost = (float)p->inventory_penalty * (float)ve_abs64(pl);
        if (p->liquidation_cost)
            cost = cost + (done ? half : 0.0f) * (float)ve_abs64(pl);
        reward[i] = (float)((money - (double)cost) / p->reward_scale);
        equity[i] = eq;  /* (replaced below where the episode ends) */
    }
    int64_t *open = pos;  /* the learners' open orders (pos is not read past the noise plans) */
    memset(open, 0, sizeof(int64_t) * (size_t)N);
    for (int r = 0; r < 2; r++)
        for (int64_t j = 0; j < bk.live[r]; j++) {
            const int64_t o = cur[3][r * n + j];
            if (o < N)
                open[o]++;
        }
    double x[4 * 64 + 8];
    double *xv = 4 * p->depth + 8 <= (int64_t)(sizeof x / sizeof x[0]) ? x : malloc(sizeof(double) * (size_t)F);
    float *final_obs = io->final_obs + b * N * F;
    FN(ve_observe)(p, cur[0], cur[1], bk.live, mark, io->mid[b], flow, acct, t, open, io->low, io->high, s->nan_bounds, s->levels, xv, final_obs);
    io->messages[b] = messages;
    io->trades[b] = trades;
    io->overflow_out[b] = bk.ovf;
    io->done[b] = (uint8_t)done;

    /* 5. time limit and auto-reset (by masked select in the torch step) */
    float *obs = io->obs + b * N * F;
    if (done) {
        const int64_t ep = episode + 1;
        int64_t q[2 * VE_MAX_ROUNDS];
        FN(ve_warm_qty)(p, key, ep, q);
        FN(ve_write_warm_book)(p, bp, q, sp);
        stop[0] = stop[1] = 0;
        ((T *)io->last_price)[b] = 0;
        io->overflow[b] = 0;
        for (int64_t o = 0; o < O; o++) {
            acct[2 * o] = 0;
            acct[2 * o + 1] = p->starting_cash;
        }
        io->episode[b] = ep;
        io->t[b] = 0;
        for (int64_t i = 0; i < N; i++)
            equity[i] = (double)p->starting_cash;
        io->mid[b] = p->warm_mark;
        FN(ve_warm_obs)(p, q, io->low, io->high, s->nan_bounds, xv, obs);
    } else {
        stop[0] = bk.top[0];
        stop[1] = bk.top[1];
        ((T *)io->last_price)[b] = (T)last;
        io->overflow[b] = bk.ovf;
        io->t[b] = t;
        io->mid[b] = mark;
        memcpy(obs, final_obs, sizeof(float) * (size_t)(N * F));
    }
    if (xv != x)
        free(xv);
    return 0;
}

/* One env step of `batch` books in place (vector.env.step_state for book dtype T). With
 * OpenMP and threads > 1 the books are split among threads; a book's results depend on it
 * alone, so not on `threads`. Returns 0; 1 where an action is outside the action space
 * (checked for every book first: nothing is stepped); -1 when out of memory. */
int FN(ve_step)(const ve_buffers *io, const ve_params *p, const vb_params *bp, int64_t batch, int threads)
{
    int err = 0;
    for (int64_t r = 0; r < batch * p->n_learners; r++) {
        int64_t idx[VE_MAX_ACTIONS];
        if (!ve_action_index(p, io->action, r, idx))
            return 1;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads > 1 ? threads : 1) if (threads > 1)
#else
    (void)threads;
#endif
    {
        FN(ve_scratch) *s = FN(ve_scratch_new)(p->capacity, p->n_owners, p->depth);
        int mine = s ? 0 : -1;
        if (s)
            s->nan_bounds = ve_nan_bounds(io->low, io->high, ve_obs_size(p));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t b = 0; b < batch; b++)
            if (!mine)
                mine = FN(ve_env_book)(io, p, bp, b, s);
        FN(ve_scratch_free)(s);
        if (mine) {
#ifdef _OPENMP
#pragma omp critical
#endif
            err = err ? err : mine;
        }
    }
    return err;
}

#undef T
#undef FN

#endif /* VE_T */
