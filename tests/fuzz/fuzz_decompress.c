/* fuzz_decompress.c - libFuzzer harness: the host-side decompressors (gzip, LZ4 legacy and frame, zstd, xz) and their output cap. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/internal.h"
#include "fuzz.h"

/*
 * Input: a compressed stream (format by magic, as boot_load_kernel() sees a
 * payload). Output capped at 1 MiB. When a stream decodes, it must decode
 * again to the same bytes with the cap set to exactly its size, and fail with
 * -EFBIG with the cap one byte smaller: the cap is exact for every format.
 */

#define MAX_OUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *out, *again;
	size_t out_len, again_len;

	fz_quiet();
	int ret = decompress(data, size, MAX_OUT, &out, &out_len);
	if (ret < 0) {
		FZ_CHECK(out == NULL);
		FZ_CHECK(ret == -ENOTSUP || ret == -EFBIG || ret == -EINVAL || ret == -ENOMEM);
		FZ_CHECK((ret == -ENOTSUP) == (comp_detect(data, size) == COMP_NONE));
		return 0;
	}
	FZ_CHECK(comp_detect(data, size) != COMP_NONE);
	FZ_CHECK(out_len <= MAX_OUT);
	if (out_len > 0) {
		FZ_CHECK(decompress(data, size, out_len, &again, &again_len) == 0);
		FZ_CHECK(again_len == out_len && memcmp(again, out, out_len) == 0);
		free(again);
		if (out_len > 1) {
			FZ_CHECK(decompress(data, size, out_len - 1, &again, &again_len) == -EFBIG);
			FZ_CHECK(again == NULL);
		}
	}
	free(out);
	return 0;
}
