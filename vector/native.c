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
 * A book's step is two functions, shared with vector/native_env.c (which steps its books
 * in place): FN(decide), the checks and the allocation on the book as it stands (status,
 * fills, what moves), and FN(apply), that change made to the rows in place, touching only
 * the slots that change. Here the old rows are copied to the new state first.
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

/* The outcome of one book's command, decided on the book before the step (FN(decide)); what
 * FN(apply) does to the rows and what StepOut reports follow from it. */
typedef struct {
    int64_t status;
    int wr;                /* the work row (the other row is 1 - wr) */
    int accepted, rest, kill;
    int64_t reach;         /* orders of the work row the order reaches (a prefix) */
    int64_t filled, rem;   /* lots traded; the order's remainder */
    int64_t gone;          /* orders filled whole (a prefix: they leave the front) */
    int64_t kill_at;       /* the cancelled order's slot (kill) */
    int64_t pos;           /* where the remainder rests on the other row (rest) */
    int64_t limit;         /* the working limit: the price it rests at */
    int64_t rested, cancelled;  /* StepOut.rested, StepOut.cancelled */
    uint8_t top[2];        /* the rows' TOP flags after the step */
    int64_t last;          /* the book's last trade price after the step */
    int capacity;          /* refused for CAPACITY (the book's overflow flag) */
} vb_move;

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
 * slots of each row of the id field `oid` ([2, N]); ids are unique in a book, so the first
 * hit is the only one. */
static int FN(find)(const T *oid, int64_t n, const int64_t live[2], int64_t id, int *row, int64_t *slot)
{
    for (int r = BID; r <= ASK; r++)
        for (int64_t j = 0; j < live[r]; j++)
            if (oid[r * n + j] == id) {
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
    if (p->lot != 1 && c->qty % p->lot != 0)  /* (no division where it cannot refuse) */
        return S_BAD_LOT;
    if (found)
        return S_DUPLICATE_ORDER_ID;
    if (is_limit && c->price <= 0)
        return S_BAD_PRICE;
    if (is_limit && p->tick != 1 && c->price % p->tick != 0)
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

/* What the command does to the book (torch step: the checks, "allocation on the work row",
 * the new state's bookkeeping), decided on the book as it stands before the step: `fld`
 * its four fields (price, qty, id, owner; each [2, N], the ASK row at +N), `live` each
 * row's live orders, `top` its TOP flags, `last` its last trade price; `found`, `hit_row`,
 * `hit_slot`: where the command's order id rests (FN(find)), `found` 0 where it rests
 * nowhere. Writes the fills of the work row's old slots 0 .. mv->reach into `fill` (the
 * caller keeps the rest of `fill` zero); nothing else is written. */
static void FN(decide)(const vb_params *p, const vb_cmd *c, const T *const fld[4], const int64_t live[2],
                       const uint8_t top[2], int64_t last, int found, int hit_row, int64_t hit_slot, T *fill,
                       vb_move *mv)
{
    const int64_t n = p->capacity;
    const int is_new = c->kind == K_NEW, is_cancel = c->kind == K_CANCEL;
    const int64_t typ = p->market_as_protected && c->type == T_MARKET ? T_PROTECT : c->type;
    const int owned = found && fld[3][hit_row * n + hit_slot] == c->trader;

    /* the work row: the opposite row of a NEW order (ASK for a buy), the named order's row
     * of a CANCEL (BID when it names none); the other row may gain the order's remainder */
    const int wr = is_cancel ? hit_row : c->side == 1, ir = 1 - wr;
    const T *wp = fld[0] + wr * n, *wq = fld[1] + wr * n;

    int64_t status = S_NONE;
    vb_reach m = {0, 0, 0};
    if (is_invalid(p, c, typ))
        status = S_INVALID;
    else if (is_new)
        status = FN(check_new)(p, c, typ, found, wp, wq, wr == ASK, live[ir] >= n, &m);
    else if (is_cancel)
        status = !found ? S_UNKNOWN_ORDER : !owned ? S_NOT_OWNER : S_CANCELLED;

    /* matching (torch step, "allocation on the work row"), fills in the old slot order */
    const int accepted = is_new && status == S_ACCEPTED;
    const int rests = c->tif == TIF_GTC && typ != T_MARKET;
    int64_t filled = 0, rem = 0, gone = 0, reached = 0;
    if (accepted) {
        for (int64_t j = 0; j < m.reach; j++)
            fill[j] = 0;
        if (p->pro_rata)
            FN(pro_rata)(p, wp, wq, m.reach, c->qty, top[wr] != 0, fill);
        else
            FN(fifo)(wq, m.reach, c->qty, fill);
        int64_t before = 0;
        for (int64_t j = 0; j < m.reach; j++) {  /* gone: orders filled whole; reached: traded into */
            gone += fill[j] == wq[j];
            reached += before < c->qty;
            before += wq[j];
        }
        filled = min64(c->qty, m.fillable);
        rem = c->qty - filled;
    }
    const int rest = accepted && rests && rem > 0;
    /* a refused cancel (INVALID: a LIMIT price above max_price, a narrowed id or trader)
     * changes nothing */
    const int kill = is_cancel && status == S_CANCELLED;
    const int64_t pos = rest ? FN(ahead)(fld[0] + ir * n, live[ir], ir == ASK, m.limit) : -1;

    mv->status = status;
    mv->wr = wr;
    mv->accepted = accepted;
    mv->rest = rest;
    mv->kill = kill;
    mv->reach = accepted ? m.reach : 0;
    mv->filled = filled;
    mv->rem = rem;
    mv->gone = gone;
    mv->kill_at = kill ? hit_slot : -1;
    mv->pos = pos;
    mv->limit = m.limit;
    mv->rested = rest ? rem : 0;
    mv->cancelled = (accepted && !rests ? rem : 0) + (kill ? fld[1][hit_row * n + hit_slot] : 0);
    /* TOP: lost when the row's first order goes; a rest ahead of the whole row is the new TOP */
    mv->top[wr] = top[wr] && gone == 0 && !(kill && hit_slot == 0);
    mv->top[ir] = top[ir] || (rest && pos == 0);
    mv->last = filled > 0 ? wp[reached > 0 ? reached - 1 : 0] : last;
    mv->capacity = status == S_CAPACITY;
}

/* The new state of the rows (torch step, "the new state"), in place, as FN(decide) decided
 * on them (`fill`: its fills; `order`: price, qty, id, owner of the command's order). Only
 * slots that change are written; every row keeps the layout check_invariants checks (live
 * orders packed at the front in priority order, then canonical empty slots), and `live`
 * follows.
 *
 * The work row (w_src): slot j takes old slot j + gone less its fill (the filled orders,
 * a prefix, leave the front) or, when a cancel removes the order at kill_at, old slot
 * j + (j >= kill_at); the slots it no longer fills become empty (the row's empty price,
 * zeros). The other row (i_src / at_new): the order's remainder is inserted at pos (the
 * row is not full: the CAPACITY check), the orders behind it move down one slot. */
static void FN(apply)(const vb_params *p, T *const fld[4], int64_t live[2], const vb_move *mv, const T *fill,
                      const int64_t order[4])
{
    const int64_t n = p->capacity;
    const int wr = mv->wr, ir = 1 - wr;
    const int64_t lw = live[wr];
    int64_t kept = lw;
    if (mv->kill) {
        for (int f = 0; f < 4; f++) {
            T *w = fld[f] + wr * n;
            for (int64_t j = mv->kill_at; j < lw - 1; j++)
                w[j] = w[j + 1];
        }
        kept = lw - 1;
    } else if (mv->accepted) {
        const int64_t gone = mv->gone;
        if (gone > 0)
            for (int f = 0; f < 4; f++) {
                T *w = fld[f] + wr * n;
                for (int64_t j = 0; j < lw - gone; j++)
                    w[j] = w[j + gone];
            }
        T *wq = fld[1] + wr * n;
        for (int64_t j = 0; j + gone < mv->reach; j++)  /* (fills are 0 past the reached prefix) */
            wq[j] = (T)wsub(wq[j], fill[j + gone]);
        kept = lw - gone;
    }
    for (int64_t j = kept; j < lw; j++) {
        fld[0][wr * n + j] = (T)(wr == ASK ? p->empty_ask : 0);
        fld[1][wr * n + j] = fld[2][wr * n + j] = fld[3][wr * n + j] = 0;
    }
    live[wr] = kept;
    if (mv->rest) {
        const int64_t li = live[ir], pos = mv->pos;
        for (int f = 0; f < 4; f++) {
            T *o = fld[f] + ir * n;
            for (int64_t j = li; j > pos; j--)
                o[j] = o[j - 1];
            o[pos] = (T)order[f];
        }
        live[ir] = li + 1;
    }
}

/* One book: the command's status, the fills on its work row, the new state and StepOut. */
static void FN(book)(const vb_buffers *io, const vb_params *p, int64_t b)
{
    const int64_t n = p->capacity;
    const T *const in[4] = {(const T *)io->price + 2 * b * n, (const T *)io->qty + 2 * b * n,
                            (const T *)io->order_id + 2 * b * n, (const T *)io->owner + 2 * b * n};
    T *const out[4] = {(T *)io->price2 + 2 * b * n, (T *)io->qty2 + 2 * b * n, (T *)io->order_id2 + 2 * b * n,
                       (T *)io->owner2 + 2 * b * n};
    const vb_cmd c = FN(load_cmd)(io, b);

    /* only live slots are read: past them every row holds empty slots (check_invariants) */
    int64_t live[2] = {FN(live)(in[1], n), FN(live)(in[1] + n, n)};
    int hit_row = BID, found = 0;
    int64_t hit_slot = 0;
    if (c.kind == K_NEW || c.kind == K_CANCEL)
        found = FN(find)(in[2], n, live, c.order_id, &hit_row, &hit_slot);

    T *fill = (T *)io->fill_qty + b * n;
    memset(fill, 0, (size_t)n * sizeof(T));
    vb_move mv;
    FN(decide)(p, &c, in, live, io->top + 2 * b, ((const T *)io->last_price)[b], found, hit_row, hit_slot, fill, &mv);

    /* the new state: the old rows, then the step's changes in place */
    for (int f = 0; f < 4; f++)
        memcpy(out[f], in[f], (size_t)(2 * n) * sizeof(T));
    const int64_t order[4] = {mv.limit, mv.rem, c.order_id, c.trader};
    FN(apply)(p, out, live, &mv, fill, order);
    io->top2[2 * b] = mv.top[0];
    io->top2[2 * b + 1] = mv.top[1];
    ((T *)io->last_price2)[b] = (T)mv.last;
    io->overflow2[b] = io->overflow[b] || mv.capacity;

    /* StepOut */
    ((T *)io->status)[b] = (T)mv.status;
    T *const maker[4] = {(T *)io->fill_price + b * n, NULL, (T *)io->fill_maker_id + b * n,
                         (T *)io->fill_maker_owner + b * n};
    for (int f = 0; f < 4; f++)  /* the old work row (its live orders, then empty slots) */
        if (f != 1)
            memcpy(maker[f], in[f] + mv.wr * n, (size_t)n * sizeof(T));
    ((T *)io->filled)[b] = (T)mv.filled;
    ((T *)io->rested)[b] = (T)mv.rested;
    ((T *)io->cancelled)[b] = (T)mv.cancelled;
    ((T *)io->taker_row)[b] = (T)mv.wr;
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
