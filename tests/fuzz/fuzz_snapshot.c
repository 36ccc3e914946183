/* fuzz_snapshot.c - libFuzzer harness: a snapshot's state file (vmm/snapshot.c, snapshot_parse()). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/err.h"
#include "vmm/snapshot.h"

/*
 * Input: one byte of mode, then the state file's records (everything after
 * the 64-byte header). Mode bit 0 set: the header is sealed with the right
 * CRCs (mode bit 1: the compressed flag), so the fuzzer reaches the record
 * and extent checks; clear: the input is the whole file as it is, header
 * included. An accepted image must have every record inside the buffer and
 * consistent counts; every refusal has a message.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++, size--;
	bool seal = mode & 1;
	size_t len = seal ? SNAP_HEADER_SIZE + size : size;
	uint8_t *buf = malloc(len ? len : 1);   /* malloc: aligned as snapshot_read()'s buffer */
	struct snapshot s;

	if (!buf)
		return 0;
	memset(buf, 0, seal ? SNAP_HEADER_SIZE : 0);
	memcpy(buf + (seal ? SNAP_HEADER_SIZE : 0), data, size);
	if (seal)
		snapshot_seal(buf, len, mode & 2 ? SNAP_FLAG_COMPRESSED : 0);
	err_clear();
	int r = snapshot_parse(buf, len, &s);
	if (r < 0) {
		if (!*err_msg())
			abort();
	} else {
		const uint8_t *end = buf + len;
		if ((const uint8_t *)(s.config + 1) > end || (const uint8_t *)s.memory < buf ||
		    (const uint8_t *)&s.memory->ext[s.memory->nr_extents] > end ||
		    (uint32_t)s.nr_vcpus != s.config->cpus)
			abort();
		uint64_t sum = 0;
		for (uint32_t i = 0; i < s.memory->nr_extents; i++)
			sum += s.memory->ext[i].len;
		if (sum > s.memory->total)
			abort();
		for (int i = 0; i < s.nr_virtio; i++)
			if ((const uint8_t *)(s.virtio[i] + 1) > end)
				abort();
	}
	free(buf);
	return 0;
}
