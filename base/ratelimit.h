/* ratelimit.h - token buckets for the I/O rate limiters (disks, NICs): pure arithmetic, time passed in. */
#ifndef MICROVM_RATELIMIT_H
#define MICROVM_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One bucket, with the semantics Firecracker documents for its rate
 * limiters: the bucket holds at most `size` tokens and refills from empty to
 * full in `refill_ms` (so the sustained rate is size / refill_ms); it starts
 * full. `burst` is a one-time extra budget, spent before the bucket and
 * never refilled. size 0: no limit (refill_ms and burst are then ignored).
 */
struct tb_config {
	uint64_t size;
	uint64_t refill_ms;
	uint64_t burst;
};

#define TB_MAX_TOKENS (1ULL << 62)       /* size and burst: level + burst never overflows */
#define TB_MAX_REFILL_MS 3600000ULL      /* one hour */
#define TB_DEFAULT_REFILL_MS 1000ULL

struct token_bucket {
	struct tb_config cfg;
	uint64_t level;                 /* tokens in the bucket, <= cfg.size */
	uint64_t burst_left;            /* what is left of the one-time burst */
	uint64_t debt;                  /* tokens taken beyond an empty bucket (a request larger than size) */
	uint64_t part;                  /* refill not yet worth a whole token, in token*ns (< refill ns) */
	uint64_t last_ns;               /* when the level was last brought up to date */
};

/* A device's limiter: bytes, and operations (disk requests or network frames). */
struct rl_config {
	struct tb_config bytes, ops;
};

struct rate_limiter {
	struct token_bucket bytes, ops;
	uint64_t throttled;             /* requests that had to wait (counted once per wait) */
};

/* Is c within the bounds (size and burst <= TB_MAX_TOKENS, 1 <= refill_ms <= TB_MAX_REFILL_MS when size > 0)? */
bool tb_config_valid(const struct tb_config *c);

/* (Re)start b with c: full bucket, the whole burst, no debt. c must be valid. */
void tb_init(struct token_bucket *b, const struct tb_config *c, uint64_t now_ns);

/* Add what the time since the last update refilled (idle time beyond a full bucket is not kept). */
void tb_refill(struct token_bucket *b, uint64_t now_ns);

/*
 * Can n tokens be taken now (after tb_refill)? Yes when the burst plus the
 * level hold n; a request larger than the bucket (n > size) also passes when
 * the bucket is full, and the rest becomes debt that refills pay first, so
 * the long-run rate stays size / refill_ms whatever the request sizes.
 */
bool tb_can(const struct token_bucket *b, uint64_t n);

/* Take n tokens (after tb_can): burst first, then the bucket, then debt. */
void tb_take(struct token_bucket *b, uint64_t n);

/* How long until tb_can(b, n) holds (after tb_refill at now), in ns; 0: now. */
uint64_t tb_wait_ns(const struct token_bucket *b, uint64_t n);

/* Both buckets of a device. */
void rl_init(struct rate_limiter *rl, const struct rl_config *c, uint64_t now_ns);
bool rl_enabled(const struct rate_limiter *rl);

/*
 * Take `bytes` from the bytes bucket and one operation from the ops bucket,
 * both or neither. Returns true, or false with *wait_ns set to the time until
 * both could be taken (and the throttled count raised).
 */
bool rl_try(struct rate_limiter *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns);

/* A copy of rl as it stands at now (levels refilled), for metrics. */
void rl_peek(const struct rate_limiter *rl, uint64_t now_ns, struct rate_limiter *out);

#endif
