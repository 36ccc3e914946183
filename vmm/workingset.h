/* workingset.h - a snapshot's working set: the pages of its memory file a restored guest touched
 * first, recorded once and prefetched by later restores (docs/snapshot.md, "Working set"). */
#ifndef MICROVM_WORKINGSET_H
#define MICROVM_WORKINGSET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * DIR/workingset, all numbers little-endian: a 32-byte header (magic
 * "MVMWSET\n", version 1, header size 32, range count, the CRC-32 of the
 * snapshot's state body it was recorded from, the RAM size), then each range
 * (offset and length in RAM, which is also the offset in the raw memory
 * file, both page aligned, sorted, not overlapping), then the CRC-32 of
 * everything before it.
 */
#define WS_MAGIC "MVMWSET\n"
#define WS_VERSION 1
#define WS_HEADER_SIZE 32
#define WS_MAX_RANGES (1u << 20)
#define WS_MAX_FILE (WS_HEADER_SIZE + (size_t)WS_MAX_RANGES * 16 + 4)
/* Touched pages closer than this are one range: a read of the gap costs less than another request. */
#define WS_GAP (64u << 10)
#define WS_PAGE 4096u

struct ws_range {
	uint64_t off, len;
};

/* Ranges built from touched pages in increasing order (ws_add_page()). */
struct ws_builder {
	struct ws_range *r;
	uint32_t n, cap;
	bool full;                      /* WS_MAX_RANGES reached: later pages were left out */
};

/*
 * Add the page at RAM offset off (page aligned, above every page added
 * before): it joins the last range if it starts less than WS_GAP after its
 * end, else starts a new one (none past WS_MAX_RANGES: the set is a hint).
 * Returns 0, or -ENOMEM / -EINVAL (out of order) with err_msg().
 */
int ws_add_page(struct ws_builder *b, uint64_t off);
void ws_builder_free(struct ws_builder *b);

/* The file for n ranges: malloc'ed (the caller frees), its length in *len; NULL when out of memory. */
uint8_t *ws_encode(const struct ws_range *r, uint32_t n, uint32_t state_crc, uint64_t ram, size_t *len);

/*
 * Check a working-set file's bytes (hostile input): magic, version, sizes,
 * the CRC, that it was recorded from this snapshot (state_crc) and RAM size,
 * and every range (non-empty, page aligned, sorted, not overlapping, inside
 * RAM). *out (malloc'ed, the caller frees; NULL when n is 0) gets *n ranges.
 * Pure. Returns 0, or -EINVAL / -ENOMEM with err_msg() saying what is wrong
 * ("recorded from another snapshot" for a stale one).
 */
int ws_parse(const uint8_t *buf, size_t len, uint32_t state_crc, uint64_t ram, struct ws_range **out,
	     uint32_t *n);

struct guest_mem;

/*
 * The prefetch: a thread that loads the ranges into the guest's mapping
 * (MADV_POPULATE_READ, Linux 5.14+; MADV_WILLNEED, an asynchronous
 * read-ahead, on older kernels) in chunks of at most 2 MiB, in order (large
 * sequential reads of the memory file), while the vCPUs start.
 */
struct ws_prefetch {
	struct ws_range *r;             /* owned */
	uint32_t n;
	const struct guest_mem *mem;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	void (*thread_init)(void);      /* run first on the thread (the seccomp filter) */
	uint64_t bytes, ns;             /* done so far; the time it took (once finished) */
};

/* Start the thread (p->r, n, mem, thread_init set). Returns 0 or -errno with err_msg(). */
int ws_prefetch_start(struct ws_prefetch *p);
/* Stop it (between chunks) and wait for it; free the ranges. Safe when never started. */
void ws_prefetch_stop(struct ws_prefetch *p);

/*
 * The pages of the guest's RAM this process has mapped (its page table: a
 * page the guest touched, or one the kernel mapped around it, up to 64 KiB),
 * read from /proc/self/pagemap, as ranges. Returns 0 or -errno with err_msg().
 */
int ws_record(const struct guest_mem *mem, struct ws_builder *b);

/*
 * Record now and save DIR/workingset (snapshot_save_working_set()): *nr
 * ranges, *bytes of RAM in them. Returns 0 or -errno with err_msg().
 */
int ws_record_save(const struct guest_mem *mem, const char *dir, uint32_t state_crc, uint64_t ram,
		   uint32_t *nr, uint64_t *bytes);

#endif
