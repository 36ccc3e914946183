/* fuzz.h - what the libFuzzer harnesses share: an input reader, a small fake guest RAM, invariant checks. */
#ifndef MICROVM_FUZZ_H
#define MICROVM_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "base/guest_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The fuzzer's input, consumed front to back. Reading past the end gives
 * zeroes, so a harness never needs to check lengths: a short input is just
 * a script that ends early (fz_empty()).
 */
struct fz {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_empty(const struct fz *f)
{
	return f->n == 0;
}

static inline uint8_t fz_u8(struct fz *f)
{
	if (!f->n)
		return 0;
	f->n--;
	return *f->p++;
}

/* Little endian, like every guest-visible field. */
static inline uint16_t fz_u16(struct fz *f)
{
	uint16_t lo = fz_u8(f);
	return (uint16_t)(lo | fz_u8(f) << 8);
}

static inline uint32_t fz_u32(struct fz *f)
{
	uint32_t lo = fz_u16(f);
	return lo | (uint32_t)fz_u16(f) << 16;
}

static inline uint64_t fz_u64(struct fz *f)
{
	uint64_t lo = fz_u32(f);
	return lo | (uint64_t)fz_u32(f) << 32;
}

/* Copy up to n bytes to dst (the rest zeroed); returns how many came from the input. */
size_t fz_bytes(struct fz *f, void *dst, size_t n);

/*
 * A fake guest RAM of up to two regions, each its own heap block of exactly
 * its size (page aligned, zeroed), so AddressSanitizer reports any access
 * past a region, and a range that spans two regions cannot silently work.
 */
struct fz_ram {
	struct guest_mem mem;
};

void fz_ram_init(struct fz_ram *r, const gpa_t *starts, const uint64_t *sizes, int nr);
void fz_ram_free(struct fz_ram *r);

/* Copy len bytes into guest RAM at gpa; bytes that fall outside RAM are dropped. */
void fz_ram_load(struct fz_ram *r, gpa_t gpa, const void *src, size_t len);

/*
 * The next u16 of the input is a length; that many bytes follow and are
 * loaded into guest RAM at address 0 (what lies outside RAM is dropped).
 * Returns how many bytes came from the input.
 */
size_t fz_ram_load_image(struct fz_ram *r, struct fz *f);

/*
 * Split data[start, size) at '\n' and NUL bytes into arguments appended to
 * argv from argv[argc], each in a heap block of its own size (so a read
 * past an argument's end is caught), while argc <= max; argv needs room for
 * max + 1 entries. Returns the new argc; the caller frees the arguments.
 */
int fz_split_args(const uint8_t *data, size_t start, size_t size, char **argv, int argc, int max);

/* true iff the host range [p, p+len) lies inside one region of r (len 0: p inside or at its end). */
bool fz_in_ram(const struct fz_ram *r, const void *p, uint64_t len);

/*
 * The driver publishes chain `head` on q: avail.ring[avail.idx % size] = head,
 * avail.idx + 1, in guest RAM. Nothing happens if q's size or avail ring
 * is unusable (the device must cope with whatever the guest did there).
 */
void fz_publish(const struct virtq *q, uint16_t head);

/*
 * A broken invariant: print what and where, then abort() so libFuzzer
 * records the input as a crash.
 */
#define FZ_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond))                                                                       \
			fz_fail(__FILE__, __LINE__, #cond);                                        \
	} while (0)
void fz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* Once per process: silence microvm's log (warnings about hostile input are expected). */
void fz_quiet(void);

#endif
