/* test_ratelimit.c - the token buckets: start full, refill exactly, burst once, big requests as debt, no overflow. */
#include <criterion/criterion.h>

#include "base/ratelimit.h"

#define MS 1000000ULL
#define S 1000000000ULL

static struct token_bucket mk(uint64_t size, uint64_t refill_ms, uint64_t burst, uint64_t now)
{
	struct token_bucket b;
	struct tb_config c = { .size = size, .refill_ms = refill_ms, .burst = burst };

	cr_assert(tb_config_valid(&c));
	tb_init(&b, &c, now);
	return b;
}

/* Take n if possible (refilled at now): the device's pattern. */
static bool take(struct token_bucket *b, uint64_t n, uint64_t now)
{
	tb_refill(b, now);
	if (!tb_can(b, n))
		return false;
	tb_take(b, n);
	return true;
}

Test(ratelimit, zero_is_unlimited)
{
	struct token_bucket b = mk(0, 0, 0, 5);
	struct rate_limiter rl = { 0 };
	struct rl_config none = { 0 };
	uint64_t wait = 7;

	for (int i = 0; i < 1000; i++)
		cr_assert(take(&b, UINT64_MAX, 5));
	cr_assert_eq(tb_wait_ns(&b, UINT64_MAX), 0);
	rl_init(&rl, &none, 0);
	cr_assert_not(rl_enabled(&rl));
	cr_assert(rl_try(&rl, UINT64_MAX, 0, &wait));
	cr_assert_eq(rl.throttled, 0);
}

Test(ratelimit, config_bounds)
{
	cr_assert(tb_config_valid(&(struct tb_config){ .size = TB_MAX_TOKENS, .refill_ms = TB_MAX_REFILL_MS,
						       .burst = TB_MAX_TOKENS }));
	cr_assert_not(tb_config_valid(&(struct tb_config){ .size = TB_MAX_TOKENS + 1, .refill_ms = 1000 }));
	cr_assert_not(tb_config_valid(&(struct tb_config){ .size = 1, .refill_ms = 0 }));
	cr_assert_not(tb_config_valid(&(struct tb_config){ .size = 1, .refill_ms = TB_MAX_REFILL_MS + 1 }));
	cr_assert_not(tb_config_valid(&(struct tb_config){ .size = 1, .refill_ms = 1, .burst = TB_MAX_TOKENS + 1 }));
	cr_assert_not(tb_config_valid(&(struct tb_config){ .size = 0, .burst = 5 }), "a burst without a limit");
}

Test(ratelimit, starts_full_then_refills_at_the_rate)
{
	struct token_bucket b = mk(1000, 1000, 0, 0);

	cr_assert(take(&b, 1000, 0));
	cr_assert_not(take(&b, 1, 0));
	cr_assert_eq(tb_wait_ns(&b, 1), 1 * MS);
	cr_assert_eq(tb_wait_ns(&b, 500), 500 * MS);
	cr_assert_not(take(&b, 500, 499 * MS));
	cr_assert(take(&b, 500, 500 * MS));
	cr_assert_eq(b.level, 0);
}

Test(ratelimit, fractions_do_not_drift)
{
	/* 3 tokens a second: 333.33 ms each. A million 1 us steps must give exactly 3 tokens a second. */
	struct token_bucket b = mk(3, 1000, 0, 0);
	uint64_t got = 0;

	cr_assert(take(&b, 3, 0));
	for (uint64_t t = 1000; t <= 10 * S; t += 1000)
		got += take(&b, 1, t);
	cr_assert_eq(got, 30);
}

Test(ratelimit, long_idle_only_fills_the_bucket)
{
	struct token_bucket b = mk(100, 10, 0, 0);

	cr_assert(take(&b, 100, 0));
	tb_refill(&b, UINT64_MAX - 1);
	cr_assert_eq(b.level, 100, "idle time is not saved up beyond a full bucket");
	cr_assert_eq(b.part, 0);
	cr_assert(take(&b, 100, UINT64_MAX - 1));
	cr_assert_not(take(&b, 1, UINT64_MAX - 1));
	/* Time going backwards (never with CLOCK_MONOTONIC) adds nothing. */
	tb_refill(&b, 5);
	cr_assert_eq(b.level, 0);
}

Test(ratelimit, large_values_do_not_overflow)
{
	struct token_bucket b = mk(TB_MAX_TOKENS, TB_MAX_REFILL_MS, TB_MAX_TOKENS, 0);

	cr_assert(take(&b, TB_MAX_TOKENS, 0), "the burst first");
	cr_assert(take(&b, TB_MAX_TOKENS, 0), "then the bucket");
	cr_assert_not(take(&b, TB_MAX_TOKENS, 0));
	uint64_t w = tb_wait_ns(&b, TB_MAX_TOKENS);
	cr_assert_eq(w, TB_MAX_REFILL_MS * MS, "a whole refill: %llu", (unsigned long long)w);
	tb_refill(&b, TB_MAX_REFILL_MS * MS / 2);
	cr_assert_eq(b.level, TB_MAX_TOKENS / 2);
	tb_refill(&b, UINT64_MAX);
	cr_assert_eq(b.level, TB_MAX_TOKENS);

	/* The fastest limit: 2^62 tokens a millisecond, for hours. */
	struct token_bucket f = mk(TB_MAX_TOKENS, 1, 0, 0);
	cr_assert(take(&f, TB_MAX_TOKENS, 0));
	cr_assert(take(&f, TB_MAX_TOKENS, 3600 * S));
}

Test(ratelimit, burst_is_spent_once)
{
	struct token_bucket b = mk(10, 100, 50, 0);

	cr_assert(take(&b, 60, 0), "bucket + burst");
	cr_assert_eq(b.burst_left, 0);
	cr_assert_not(take(&b, 1, 0));
	cr_assert(take(&b, 10, 100 * MS));
	tb_refill(&b, 10 * S);
	cr_assert_eq(b.burst_left, 0, "the burst never comes back");
	cr_assert_eq(b.level, 10);
	cr_assert(take(&b, 10, 10 * S));
	cr_assert_not(take(&b, 1, 10 * S), "only the bucket's 10");
	/* Re-initialising (new limits through the API) gives a new burst. */
	tb_init(&b, &b.cfg, 10 * S);
	cr_assert(take(&b, 60, 10 * S));
}

Test(ratelimit, request_larger_than_the_bucket_runs_into_debt)
{
	struct token_bucket b = mk(100, 1000, 0, 0);

	cr_assert(take(&b, 250, 0), "a full bucket lets a larger request through");
	cr_assert_eq(b.level, 0);
	cr_assert_eq(b.debt, 150);
	cr_assert_not(take(&b, 1, 0));
	/* 150 of debt and then 1 token: 1.51 s at 100 a second. */
	cr_assert_eq(tb_wait_ns(&b, 1), 1510 * MS);
	cr_assert_not(take(&b, 1, 1509 * MS));
	cr_assert(take(&b, 1, 1510 * MS));
	/* Another large one waits for a full bucket. */
	cr_assert_eq(tb_wait_ns(&b, 1000), 1000 * MS);
	cr_assert_not(take(&b, 1000, 2509 * MS));
	cr_assert(take(&b, 1000, 2510 * MS));
}

Test(ratelimit, limiter_takes_both_buckets_or_neither)
{
	struct rate_limiter rl = { 0 };
	struct rl_config c = { .bytes = { .size = 1000, .refill_ms = 1000 }, .ops = { .size = 2, .refill_ms = 1000 } };
	uint64_t wait = 0;

	rl_init(&rl, &c, 0);
	cr_assert(rl_enabled(&rl));
	cr_assert(rl_try(&rl, 400, 0, &wait));
	cr_assert(rl_try(&rl, 400, 0, &wait));
	/* Bytes would fit (200 left), operations do not: nothing is taken. */
	cr_assert_not(rl_try(&rl, 100, 0, &wait));
	cr_assert_eq(rl.bytes.level, 200);
	cr_assert_eq(rl.throttled, 1);
	cr_assert_eq(wait, 500 * MS, "one operation at 2 a second");
	/* Operations would fit, bytes do not: the longer wait wins. */
	cr_assert_not(rl_try(&rl, 900, 500 * MS, &wait));
	cr_assert_eq(rl.ops.level, 1);
	cr_assert_eq(wait, 200 * MS, "200 more bytes at 1000 a second (700 held): %llu", (unsigned long long)wait);
	cr_assert_eq(rl.throttled, 2);
	/* New limits keep the count and refill. */
	rl_init(&rl, &c, 600 * MS);
	cr_assert_eq(rl.throttled, 2);
	cr_assert_eq(rl.bytes.level, 1000);

	struct rate_limiter peek;
	rl_peek(&rl, 600 * MS, &peek);
	cr_assert_eq(peek.ops.level, 2);
}
