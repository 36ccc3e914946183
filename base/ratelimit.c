/* ratelimit.c - token buckets (see ratelimit.h). Integer arithmetic only; products in 128 bits. */
#include "base/ratelimit.h"

typedef unsigned __int128 u128;

static uint64_t refill_ns(const struct tb_config *c)
{
	return c->refill_ms * 1000000ULL;
}

bool tb_config_valid(const struct tb_config *c)
{
	if (c->size == 0)
		return c->burst == 0;
	return c->size <= TB_MAX_TOKENS && c->burst <= TB_MAX_TOKENS && c->refill_ms >= 1 &&
	       c->refill_ms <= TB_MAX_REFILL_MS;
}

void tb_init(struct token_bucket *b, const struct tb_config *c, uint64_t now_ns)
{
	*b = (struct token_bucket){ .cfg = *c, .level = c->size, .burst_left = c->size ? c->burst : 0,
				    .last_ns = now_ns };
}

void tb_refill(struct token_bucket *b, uint64_t now_ns)
{
	uint64_t rns = refill_ns(&b->cfg);

	if (!b->cfg.size || now_ns <= b->last_ns) {
		b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
		return;
	}
	u128 acc = (u128)(now_ns - b->last_ns) * b->cfg.size + b->part;
	b->last_ns = now_ns;
	u128 tokens = acc / rns;
	b->part = (uint64_t)(acc % rns);
	/* Pay the debt first; what is left fills the bucket up to its size. */
	if (tokens >= (u128)b->debt + (b->cfg.size - b->level)) {
		b->debt = 0;
		b->level = b->cfg.size;
		b->part = 0; /* a full bucket keeps no fraction: idle time is not saved up */
		return;
	}
	uint64_t t = (uint64_t)tokens;
	if (t <= b->debt) {
		b->debt -= t;
		return;
	}
	t -= b->debt;
	b->debt = 0;
	b->level += t;
}

bool tb_can(const struct token_bucket *b, uint64_t n)
{
	if (!b->cfg.size)
		return true;
	if (b->debt)
		return false;
	if (b->burst_left + b->level >= n)
		return true;
	return n > b->cfg.size && b->level == b->cfg.size;
}

void tb_take(struct token_bucket *b, uint64_t n)
{
	if (!b->cfg.size)
		return;
	uint64_t from_burst = n < b->burst_left ? n : b->burst_left;
	b->burst_left -= from_burst;
	n -= from_burst;
	uint64_t from_level = n < b->level ? n : b->level;
	b->level -= from_level;
	n -= from_level;
	/* Only a request larger than the bucket gets here (tb_can): at most one request's worth. */
	b->debt = n > UINT64_MAX - b->debt ? UINT64_MAX : b->debt + n;
}

uint64_t tb_wait_ns(const struct token_bucket *b, uint64_t n)
{
	if (tb_can(b, n))
		return 0;
	/* Tokens still missing: the debt, then up to n (or a full bucket for a request larger than it). */
	uint64_t want = n > b->cfg.size ? b->cfg.size : n;
	uint64_t have = b->level + (n > b->cfg.size ? 0 : b->burst_left);
	u128 missing = (u128)b->debt + (want > have ? want - have : 0);
	/* Time for `missing` tokens, less the fraction already accumulated, rounded up. */
	u128 units = missing * refill_ns(&b->cfg);
	units = units > b->part ? units - b->part : 0;
	u128 ns = (units + b->cfg.size - 1) / b->cfg.size;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)(ns ? ns : 1);
}

void rl_init(struct rate_limiter *rl, const struct rl_config *c, uint64_t now_ns)
{
	uint64_t throttled = rl->throttled;

	tb_init(&rl->bytes, &c->bytes, now_ns);
	tb_init(&rl->ops, &c->ops, now_ns);
	rl->throttled = throttled;
}

bool rl_enabled(const struct rate_limiter *rl)
{
	return rl->bytes.cfg.size || rl->ops.cfg.size;
}

bool rl_try(struct rate_limiter *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns)
{
	tb_refill(&rl->bytes, now_ns);
	tb_refill(&rl->ops, now_ns);
	if (tb_can(&rl->bytes, bytes) && tb_can(&rl->ops, 1)) {
		tb_take(&rl->bytes, bytes);
		tb_take(&rl->ops, 1);
		return true;
	}
	uint64_t a = tb_wait_ns(&rl->bytes, bytes), b = tb_wait_ns(&rl->ops, 1);
	*wait_ns = a > b ? a : b;
	rl->throttled++;
	return false;
}

void rl_peek(const struct rate_limiter *rl, uint64_t now_ns, struct rate_limiter *out)
{
	*out = *rl;
	tb_refill(&out->bytes, now_ns);
	tb_refill(&out->ops, now_ns);
}
