/* vector/native.c: a hand-written CPU kernel of vector.book.step (see vector/native.py).
 *
 * One call steps B independent books, one command each, as vector.book.step does: it reads
 * the old state and the commands and writes the new state into separate buffers (the old
 * state is never written) plus every StepOut field but the maker_* views. The torch step is
 * the reference; every rule below cites the part of vector.book._step (or pro_rata_fill) it
 * mirrors, and tests/test_vector_native.py compares the two after every step.
 *
 * Where the torch step scans all N slots of a row, this scans only the slots that can
 * matter, relying on the state layout vector.hash.check_invariants checks (live orders
 * packed at the front of each row in priority order, empty slots canonical, order ids
 * unique in a book): every book a step produces has it.
 *
 * Plain C11, no Python or torch headers. The body below `#else` is a template over the
 * state dtype T, included twice by this same file (int64_t and int32_t). Arithmetic is in
 * int64_t for both dtypes: for an int32 book no intermediate the torch step computes in
 * int32 can leave the int32 range (BookParams bounds quantity sums and protection), so
 * the results are the same. The one product that can leave int64 (a pro-rata share, qty x
 * lots, with max_qty above ~3e9) wraps as torch's int64 multiplication does: computed in
 * uint64_t, so there is no undefined behaviour.
 */
#ifndef VB_T

#include <stdint.h>
#include <string.h>

enum { BID = 0, ASK = 1 };
enum { K_NONE = 0, K_NEW = 1, K_CANCEL = 2 };                   /* Commands.kind */
enum { T_LIMIT = 0, T_MARKET = 1, T_PROTECT = 2, T_MKT_LIMIT = 3 }; /* OrderType */
enum { TIF_GTC = 0, TIF_IOC = 2, TIF_FOK = 3 };                  /* TimeInForce */
enum {                                                           /* vector.book.Status */
    S_NONE = 0, S_ACCEPTED = 1, S_CANCELLED = 2,
    S_UNSUPPORTED = 10, S_BAD_QUANTITY = 11, S_QUANTITY_TOO_LARGE = 12, S_BAD_LOT = 13,
    S_DUPLICATE_ORDER_ID = 14, S_BAD_PRICE = 15, S_OFF_TICK = 16, S_POST_ONLY_WOULD_CROSS = 17,
    S_NO_LIQUIDITY = 18, S_FOK_NOT_FILLABLE = 19, S_UNKNOWN_ORDER = 20, S_NOT_OWNER = 21,
    S_CAPACITY = 30, S_INVALID = 31
};

/* BookParams, as vector/native.py packs it (int64 each, in this order). */
typedef struct {
    int64_t capacity;            /* N, slots per row */
    int64_t pro_rata;            /* rule: 0 fifo, 1 pro_rata */
    int64_t use_top;             /* pro rata with a TOP order */
    int64_t min_alloc;           /* smallest pro-rata share kept (at least 1) */
    int64_t tick, lot, max_qty;
    int64_t protection;          /* protection_ticks x tick */
    int64_t market_as_protected;
    int64_t type_mask;           /* bit t: order type t accepted */
    int64_t tif_mask;            /* bit t: duration t accepted */
    int64_t post_only;           /* post-only accepted */
    int64_t max_price;           /* BookParams.max_price */
    int64_t empty_ask;           /* price of an empty ask slot */
} vb_params;

/* Buffers of one call, as vector/native.py packs them (one address each, in this order).
 * State tensors are [B, 2, N], commands and per-book outputs [B], fill rows [B, N]; bools
 * (top, overflow, post_only, wide) one byte each; wide may be NULL (no narrowed command). */
typedef struct {
    const void *price, *qty, *order_id, *owner;
    const uint8_t *top;
    const void *last_price;
    const uint8_t *overflow;
    const void *kind, *c_order_id, *trader, *side, *c_qty, *c_price, *type, *tif;
    const uint8_t *post_only, *wide;
    void *price2, *qty2, *order_id2, *owner2;
    uint8_t *top2;
    void *last_price2;
    uint8_t *overflow2;
    void *status, *fill_qty, *fill_price, *fill_maker_id, *fill_maker_owner;
    void *filled, *rested, *cancelled, *taker_row;
} vb_buffers;

/* One book's command, widened to int64. */
typedef struct {
    int64_t kind, order_id, trader, side, qty, price, type, tif;
    int post_only, wide;
} vb_cmd;

/* What a NEW order reaches on the work row (torch step: limit, cross, fillable). */
typedef struct {
    int64_t limit;     /* the working limit */
    int64_t reach;     /* orders of the work row at or better than it: a prefix */
    int64_t fillable;  /* their quantity */
} vb_reach;

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Two's-complement wrapping arithmetic, as torch's int64 ops (no signed-overflow UB). */
static inline int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* a // d rounded towards minus infinity, as torch's floor_divide; d > 0. */
static inline int64_t floor_div(int64_t a, int64_t d)
{
    int64_t q = a / d;
    return q - (a % d < 0);
}

/* The working limit of a NEW order of a supported type and side +-1 (torch step, "working
 * limit"): LIMIT its price, MARKET past every price (max_price + 1 for a buy, 1 for a
 * sell), MARKET_PROTECT the opposite best +/- protection (one tick if that is not
 * positive), MARKET_LIMIT the opposite best; clamped to 1 .. max_price + 1 so an empty
 * slot never reaches it. `typ` is after market_as_protected. */
static int64_t order_limit(const vb_params *p, const vb_cmd *c, int64_t typ, int64_t opp_best)
{
    int64_t limit = opp_best;
    if (typ == T_LIMIT) {
        limit = c->price;
    } else if (typ == T_MARKET) {
        limit = c->side == 1 ? p->max_price + 1 : 1;
    } else if (typ == T_PROTECT) {
        limit = opp_best + c->side * p->protection;  /* |.| < 2**63: BookParams bounds both */
        if (limit <= 0)
            limit = p->tick;
    }
    return limit < 1 ? 1 : limit > p->max_price + 1 ? p->max_price + 1 : limit;
}

/* The INVALID refusal (torch step, first of the checks): an unknown kind; for NEW and
 * CANCEL a LIMIT price above max_price or an id/trader narrowing could not hold; for NEW an
 * unknown type or duration or a side other than +-1. `typ` is after market_as_protected. */
static int is_invalid(const vb_params *p, const vb_cmd *c, int64_t typ)
{
    if (c->kind < 0 || c->kind > 2)
        return 1;
    if (c->kind == K_NONE)
        return 0;
    if ((typ == T_LIMIT && c->price > p->max_price) || c->wide)
        return 1;
    return c->kind == K_NEW
        && (typ < 0 || typ > 5 || c->tif < 0 || c->tif > 3 || (c->side != 1 && c->side != -1));
}

/* The UNSUPPORTED refusal of a NEW order with known type and duration: a type or duration
 * the params leave out, or post-only where it is not allowed (not accepted, not GTC, not
 * LIMIT). */
static int is_unsupported(const vb_params *p, const vb_cmd *c, int64_t typ)
{
    if (!((p->type_mask >> typ) & 1) || !((p->tif_mask >> c->tif) & 1))
        return 1;
    return c->post_only && (!p->post_only || c->tif != TIF_GTC || typ != T_LIMIT);
}

#define VB_CAT_(a, b) a##b
#define VB_CAT(a, b) VB_CAT_(a, b)

#define VB_T int64_t
#define VB_SUFFIX _i64
#define VB_T_MAX INT64_MAX
#include "native.c" /* this file again, VB_T defined */
#undef VB_T
#undef VB_SUFFIX
#undef VB_T_MAX

#define VB_T int32_t
#define VB_SUFFIX _i32
#define VB_T_MAX INT32_MAX
#include "native.c" /* this file again, VB_T defined */
#undef VB_T
#undef VB_SUFFIX
#undef VB_T_MAX

/* 1 when built with OpenMP (a `threads` argument above 1 then splits the books). */
int vb_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

#else /* ---- the kernel of one state dtype T (included twice from above) ---------------- */

#define T VB_T
#define FN(name) VB_CAT(name, VB_SUFFIX)

/* One book's two rows of one [B, 2, N] tensor. */
typedef struct {
    const T *row[2];
} FN(rows);

typedef struct {
    T *row[2];
} FN(rows_out);

static inline FN(rows) FN(rows_of)(const void *base, int64_t b, int64_t n)
{
    const T *p = (const T *)base + 2 * b * n;
    FN(rows) r = {{p, p + n}};
    return r;
}

static inline FN(rows_out) FN(rows_out_of)(void *base, int64_t b, int64_t n)
{
    T *p = (T *)base + 2 * b * n;
    FN(rows_out) r = {{p, p + n}};
    return r;
}

static vb_cmd FN(load_cmd)(const vb_buffers *io, int64_t b)
{
    vb_cmd c;
    c.kind = ((const T *)io->kind)[b];
    c.order_id = ((const T *)io->c_order_id)[b];
    c.trader = ((const T *)io->trader)[b];
    c.side = ((const T *)io->side)[b];
    c.qty = ((const T *)io->c_qty)[b];
    c.price = ((const T *)io->c_price)[b];
    c.type = ((const T *)io->type)[b];
    c.tif = ((const T *)io->tif)[b];
    c.post_only = io->post_only[b] != 0;
    c.wide = io->wide != NULL && io->wide[b] != 0;
    return c;
}

/* The live orders of a row: a prefix (quantity > 0), returns its length. */
static int64_t FN(live)(const T *q, int64_t n)
{
    int64_t j = 0;
    while (j < n && q[j] > 0)
        j++;
    return j;
}

/* Where order `id` rests (torch step, "the order this id names") among the `live[r]` live
 * slots of each row; ids are unique in a book, so the first hit is the only one. */
static int FN(find)(const FN(rows) *oid, const int64_t live[2], int64_t id, int *row, int64_t *slot)
{
    for (int r = BID; r <= ASK; r++)
        for (int64_t j = 0; j < live[r]; j++)
            if (oid->row[r][j] == id) {
                *row = r;
                *slot = j;
                return 1;
            }
    return 0;
}

/* The orders of the work row `limit` reaches (torch step, "cross": asks <= limit on the
 * ask row, bids >= limit on the bid row). The row is in priority order and an empty slot's
 * price never reaches a limit, so they are a prefix: returns its length. */
static int64_t FN(reach)(const T *wp, const T *wq, int64_t n, int ask, int64_t limit, int64_t *fillable)
{
    int64_t j = 0, sum = 0;
    for (; j < n && (ask ? wp[j] <= limit : wp[j] >= limit); j++)
        sum += wq[j];
    *fillable = sum;
    return j;
}

/* How many orders of the row a new order resting at `limit` queues behind (torch step,
 * "pos"): bids at or above it, asks at or below it; a prefix, as in FN(reach). */
static int64_t FN(ahead)(const T *ip, int64_t n, int ask, int64_t limit)
{
    int64_t j = 0;
    while (j < n && (ask ? ip[j] <= limit : ip[j] >= limit))
        j++;
    return j;
}

/* The status of a NEW order that is not INVALID (torch step, the checks after INVALID in
 * _CHECKS order, first match wins); fills *m where the order gets far enough to need it. */
static int64_t FN(check_new)(const vb_params *p, const vb_cmd *c, int64_t typ, int found, const T *wp,
                             const T *wq, int w_ask, int own_full, vb_reach *m)
{
    const int is_limit = typ == T_LIMIT;
    if (is_unsupported(p, c, typ))
        return S_UNSUPPORTED;
    if (c->qty <= 0)
        return S_BAD_QUANTITY;
    if (c->qty > p->max_qty)
        return S_QUANTITY_TOO_LARGE;
    if (c->qty % p->lot != 0)
        return S_BAD_LOT;
    if (found)
        return S_DUPLICATE_ORDER_ID;
    if (is_limit && c->price <= 0)
        return S_BAD_PRICE;
    if (is_limit && c->price % p->tick != 0)
        return S_OFF_TICK;
    const int64_t n = p->capacity;
    m->limit = order_limit(p, c, typ, wp[0]);
    m->reach = FN(reach)(wp, wq, n, w_ask, m->limit, &m->fillable);
    if (is_limit && c->post_only && m->fillable > 0)
        return S_POST_ONLY_WOULD_CROSS;
    if (!is_limit && wq[0] <= 0)
        return S_NO_LIQUIDITY;
    if (c->tif == TIF_FOK && m->fillable < c->qty)
        return S_FOK_NOT_FILLABLE;
    /* the remainder would rest on a full row: refused whole (torch step, CAPACITY) */
    const int rests = c->tif == TIF_GTC && typ != T_MARKET;
    if (rests && c->qty > m->fillable && own_full)
        return S_CAPACITY;
    return S_ACCEPTED;
}

/* Price-time FIFO over the reached prefix (torch step, rule "fifo"): each order fills
 * min(its quantity, what is left of the aggressor after the orders ahead). */
static void FN(fifo)(const T *wq, int64_t reach, int64_t a, T *fill)
{
    int64_t before = 0;
    for (int64_t j = 0; j < reach && before < a; j++) {
        fill[j] = (T)min64(a - before, wq[j]);
        before += wq[j];
    }
}

/* CME pro rata over the reached prefix (pro_rata_fill, step by step; `top`: the row's first
 * order is TOP). Levels taken whole fill FIFO (the CME FIFO exception). On the one level P
 * taken in part, with r lots arriving: the TOP order first (only if it is the first order
 * of P and P is the best level), then floor(qty x r' / total') to each other order of P
 * (r', total' without TOP; the product in int64, wrapping as torch's), shares below
 * min_alloc dropped, then the leftover FIFO, each order up to what it has left. */
static void FN(pro_rata)(const vb_params *p, const T *wp, const T *wq, int64_t reach, int64_t a, int top, T *fill)
{
    const int64_t n = p->capacity;
    /* k: the first slot not taken whole (orders whose cumulative quantity is <= a) */
    int64_t k = 0, incl = 0;
    for (int64_t j = 0; j < reach; j++) {
        incl += wq[j];
        k += incl <= a;
    }
    const int64_t level = k < n ? wp[k] : -1;  /* P, the level taken in part (if reached) */
    int64_t level_before = VB_T_MAX, total = 0, before = 0;  /* lots ahead of P; P's size */
    for (int64_t j = 0; j < reach; j++) {
        if (wp[j] == level) {
            level_before = min64(level_before, before);
            total += wq[j];
        }
        before += wq[j];
    }
    const int64_t r = max64(a - level_before, 0);
    const int top_here = p->use_top && top && level_before == 0 && reach > 0 && wp[0] == level;
    const int64_t t = top_here ? wq[0] : 0;
    const int64_t top_fill = min64(t, r), r2 = r - top_fill;
    const int64_t den = max64(total - t, 1);
    const int64_t min_share = max64(p->min_alloc, 1);
    /* the shares, into fill[] for now; the leftover after them */
    int64_t left = r2;
    for (int64_t j = 0; j < reach; j++) {
        const int others = wp[j] == level && !(j == 0 && top_here);
        int64_t share = others ? floor_div(wmul(wq[j], r2), den) : 0;
        share = (T)share >= min_share ? (T)share : 0;
        fill[j] = (T)share;
        left = wsub(left, share);
    }
    /* whole levels, then share + the leftover FIFO (each order's room: qty - share) */
    int64_t room_before = 0;
    before = 0;
    for (int64_t j = 0; j < reach; j++) {
        const int others = wp[j] == level && !(j == 0 && top_here);
        const int64_t share = fill[j];
        const int64_t room = others ? wsub(wq[j], share) : 0;
        const int64_t extra = min64(max64(wsub(left, room_before), 0), room);
        int64_t f = wadd(wadd(before < level_before ? wq[j] : 0, share), extra);
        if (j == 0 && p->use_top)
            f = wadd(f, top_fill);
        fill[j] = (T)f;
        room_before = wadd(room_before, room);
        before += wq[j];
    }
}

/* `n` slots of one field copied (none when n <= 0). */
static inline void FN(copy)(T *dst, const T *src, int64_t n)
{
    if (n > 0)
        memcpy(dst, src, (size_t)n * sizeof(T));
}

/* `n` slots of one field set to `value`. */
static inline void FN(set)(T *dst, T value, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = value;
}

/* Slots `from` .. n of a row's four fields (price, qty, id, owner) set empty. */
static inline void FN(set_empty)(T *const out[4], int64_t from, int64_t n, T empty_price)
{
    FN(set)(out[0] + from, empty_price, n - from);
    for (int f = 1; f < 4; f++)
        FN(set)(out[f] + from, 0, n - from);
}

/* The work row after the step (torch step, "the new state", w_src): slot j takes old slot
 * j + gone less its fill (the filled orders, a prefix, leave the front) or, when a cancel
 * removes the order at `kill_at`, old slot j + (j >= kill_at); the other slots are empty
 * (the row's empty price, zeros), as the old row's past its `live` orders. `fill`: the
 * old slots' fills. */
static void FN(write_work_row)(const T *const in[4], T *const out[4], int64_t n, int64_t live, int64_t gone,
                               int64_t kill_at, const T *fill, int64_t reach, T empty_price)
{
    int64_t kept;
    if (kill_at >= 0) {
        for (int f = 0; f < 4; f++) {
            FN(copy)(out[f], in[f], kill_at);
            FN(copy)(out[f] + kill_at, in[f] + kill_at + 1, live - 1 - kill_at);
        }
        kept = live - 1;
    } else {
        for (int f = 0; f < 4; f++)
            FN(copy)(out[f], in[f] + gone, live - gone);
        for (int64_t j = 0; j + gone < reach; j++)  /* (fills are 0 past the reached prefix) */
            out[1][j] = (T)wsub(out[1][j], fill[j + gone]);
        kept = live - gone;
    }
    FN(set_empty)(out, kept, n, empty_price);
}

/* The other row after the step (torch step, i_src / at_new): its `live` orders, with the
 * new order's remainder inserted at `pos` (>= 0; the row is not full: the CAPACITY check)
 * and the orders behind it moved down one slot; then empty slots. `order`: price, qty, id,
 * owner of the new order. */
static void FN(write_other_row)(const T *const in[4], T *const out[4], int64_t n, int64_t live, int64_t pos,
                                const int64_t order[4], T empty_price)
{
    for (int f = 0; f < 4; f++) {
        if (pos < 0) {
            FN(copy)(out[f], in[f], live);
            continue;
        }
        FN(copy)(out[f], in[f], pos);
        out[f][pos] = (T)order[f];
        FN(copy)(out[f] + pos + 1, in[f] + pos, live - pos);
    }
    FN(set_empty)(out, pos < 0 ? live : live + 1, n, empty_price);
}

/* One book: the command's status, the fills on its work row, the new state and StepOut. */
static void FN(book)(const vb_buffers *io, const vb_params *p, int64_t b)
{
    const int64_t n = p->capacity;
    const FN(rows) price = FN(rows_of)(io->price, b, n), qty = FN(rows_of)(io->qty, b, n);
    const FN(rows) oid = FN(rows_of)(io->order_id, b, n), owner = FN(rows_of)(io->owner, b, n);
    const vb_cmd c = FN(load_cmd)(io, b);
    const int is_new = c.kind == K_NEW, is_cancel = c.kind == K_CANCEL;
    const int64_t typ = p->market_as_protected && c.type == T_MARKET ? T_PROTECT : c.type;

    /* only live slots are read: past them every row holds empty slots (check_invariants) */
    const int64_t live[2] = {FN(live)(qty.row[BID], n), FN(live)(qty.row[ASK], n)};
    int hit_row = BID, found = 0;
    int64_t hit_slot = 0;
    if (is_new || is_cancel)
        found = FN(find)(&oid, live, c.order_id, &hit_row, &hit_slot);
    const int owned = found && owner.row[hit_row][hit_slot] == c.trader;

    /* the work row: the opposite row of a NEW order (ASK for a buy), the named order's row
     * of a CANCEL (BID when it names none); the other row may gain the order's remainder */
    const int wr = is_cancel ? hit_row : c.side == 1, ir = 1 - wr;
    const T *wp = price.row[wr], *wq = qty.row[wr];

    int64_t status = S_NONE;
    vb_reach m = {0, 0, 0};
    if (is_invalid(p, &c, typ))
        status = S_INVALID;
    else if (is_new)
        status = FN(check_new)(p, &c, typ, found, wp, wq, wr == ASK, qty.row[ir][n - 1] > 0, &m);
    else if (is_cancel)
        status = !found ? S_UNKNOWN_ORDER : !owned ? S_NOT_OWNER : S_CANCELLED;

    /* matching (torch step, "allocation on the work row"), fills in the old slot order */
    T *fill = (T *)io->fill_qty + b * n;
    memset(fill, 0, (size_t)n * sizeof(T));
    const int accepted = is_new && status == S_ACCEPTED;
    const int rests = c.tif == TIF_GTC && typ != T_MARKET;
    int64_t filled = 0, rem = 0, gone = 0, reached = 0;
    if (accepted) {
        if (p->pro_rata)
            FN(pro_rata)(p, wp, wq, m.reach, c.qty, io->top[2 * b + wr] != 0, fill);
        else
            FN(fifo)(wq, m.reach, c.qty, fill);
        int64_t before = 0;
        for (int64_t j = 0; j < m.reach; j++) {  /* gone: orders filled whole; reached: traded into */
            gone += fill[j] == wq[j];
            reached += before < c.qty;
            before += wq[j];
        }
        filled = min64(c.qty, m.fillable);
        rem = c.qty - filled;
    }
    const int rest = accepted && rests && rem > 0;
    /* a refused cancel (INVALID: a LIMIT price above max_price, a narrowed id or trader)
     * changes nothing */
    const int kill = is_cancel && status == S_CANCELLED;

    /* the new state */
    const FN(rows_out) price2 = FN(rows_out_of)(io->price2, b, n), qty2 = FN(rows_out_of)(io->qty2, b, n);
    const FN(rows_out) oid2 = FN(rows_out_of)(io->order_id2, b, n), owner2 = FN(rows_out_of)(io->owner2, b, n);
    const T *const w_in[4] = {wp, wq, oid.row[wr], owner.row[wr]};
    T *const w_out[4] = {price2.row[wr], qty2.row[wr], oid2.row[wr], owner2.row[wr]};
    const T *const i_in[4] = {price.row[ir], qty.row[ir], oid.row[ir], owner.row[ir]};
    T *const i_out[4] = {price2.row[ir], qty2.row[ir], oid2.row[ir], owner2.row[ir]};
    const T w_empty = (T)(wr == ASK ? p->empty_ask : 0), i_empty = (T)(ir == ASK ? p->empty_ask : 0);
    FN(write_work_row)(w_in, w_out, n, live[wr], gone, kill ? hit_slot : -1, fill, m.reach, w_empty);
    const int64_t pos = rest ? FN(ahead)(price.row[ir], live[ir], ir == ASK, m.limit) : -1;
    const int64_t order[4] = {m.limit, rem, c.order_id, c.trader};
    FN(write_other_row)(i_in, i_out, n, live[ir], pos, order, i_empty);

    /* TOP: lost when the row's first order goes; a rest ahead of the whole row is the new TOP */
    io->top2[2 * b + wr] = io->top[2 * b + wr] && gone == 0 && !(kill && hit_slot == 0);
    io->top2[2 * b + ir] = io->top[2 * b + ir] || (rest && pos == 0);
    const T last = ((const T *)io->last_price)[b];
    ((T *)io->last_price2)[b] = filled > 0 ? wp[reached > 0 ? reached - 1 : 0] : last;
    io->overflow2[b] = io->overflow[b] || status == S_CAPACITY;

    /* StepOut */
    ((T *)io->status)[b] = (T)status;
    T *const maker[4] = {(T *)io->fill_price + b * n, NULL, (T *)io->fill_maker_id + b * n,
                         (T *)io->fill_maker_owner + b * n};
    for (int f = 0; f < 4; f++)  /* the old work row: its live orders, then empty slots */
        if (f != 1) {
            FN(copy)(maker[f], w_in[f], live[wr]);
            FN(set)(maker[f] + live[wr], f == 0 ? w_empty : 0, n - live[wr]);
        }
    ((T *)io->filled)[b] = (T)filled;
    ((T *)io->rested)[b] = (T)(rest ? rem : 0);
    ((T *)io->cancelled)[b] = (T)((accepted && !rests ? rem : 0) + (kill ? qty.row[hit_row][hit_slot] : 0));
    ((T *)io->taker_row)[b] = (T)wr;
}

/* Step `batch` books (vector.book.step for state dtype T): see vb_buffers for the layout.
 * With OpenMP and threads > 1 the books are split among threads; each book's outputs
 * depend on that book alone, so the results do not depend on `threads`. */
int FN(vb_step)(const vb_buffers *io, const vb_params *p, int64_t batch, int threads)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads > 1 ? threads : 1) if (threads > 1)
#else
    (void)threads;
#endif
    for (int64_t b = 0; b < batch; b++)
        FN(book)(io, p, b);
    return 0;
}

#undef T
#undef FN

#endif /* VB_T */
