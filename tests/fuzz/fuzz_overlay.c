/* fuzz_overlay.c - libFuzzer harness: an overlay file's header and allocation bitmap (io/overlay.c, ovl_header_parse(), ovl_bitmap_check()). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "base/err.h"
#include "io/overlay.h"

#define MAX_BITMAP (1u << 20)   /* larger bitmaps are real but slow the fuzzer: their header is still checked */

/*
 * Input: the base's size (u64), the overlay file's size (u64), a mode byte,
 * then the file's first bytes (the header; with mode bit 0 the first 128
 * get a correct CRC, so the fuzzer reaches the field checks), and with mode
 * bit 1 the bitmap after the 4 KiB header area (zero-padded to the header's
 * bitmap length). An accepted header describes a disk of the base's size
 * with its bitmap and data inside the file; an accepted bitmap has no bit
 * past the disk's end; every refusal has a message.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = { data, size };
	uint64_t base_size = fz_u64(&f), file_size = fz_u64(&f);
	uint8_t mode = fz_u8(&f);
	size_t hlen = f.n < OVL_HEADER_AREA ? f.n : OVL_HEADER_AREA;
	uint8_t *hdr = malloc(hlen ? hlen : 1);
	struct ovl_header h;

	if (!hdr)
		return 0;
	memcpy(hdr, f.p, hlen);
	if ((mode & 1) && hlen >= sizeof(struct ovl_header)) {
		memset(hdr + 124, 0, 4);
		uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), hdr, sizeof(struct ovl_header));
		memcpy(hdr + 124, &c, 4);   /* little endian host */
	}
	err_clear();
	int r = ovl_header_parse(hdr, hlen, file_size, base_size, &h);
	if (r < 0) {
		FZ_CHECK(*err_msg());
		free(hdr);
		return 0;
	}
	uint64_t clusters = ovl_clusters(h.size);
	FZ_CHECK(h.size == base_size && h.size % 512 == 0 && h.size && h.size <= OVL_MAX_SIZE);
	FZ_CHECK(h.cluster_size == OVL_CLUSTER && h.flags == 0 && h.bitmap_off == OVL_HEADER_AREA);
	FZ_CHECK(h.bitmap_len * 8 >= clusters && h.bitmap_len % 4096 == 0);
	FZ_CHECK(h.data_off == h.bitmap_off + h.bitmap_len);
	FZ_CHECK(file_size >= h.data_off + clusters * OVL_CLUSTER);
	if ((mode & 2) && h.bitmap_len <= MAX_BITMAP) {
		uint8_t *bm = calloc(1, h.bitmap_len);
		if (bm) {
			size_t rest = f.n > hlen ? f.n - hlen : 0;
			memcpy(bm, f.p + hlen, rest < h.bitmap_len ? rest : h.bitmap_len);
			err_clear();
			if (ovl_bitmap_check(&h, bm, h.bitmap_len) < 0) {
				FZ_CHECK(*err_msg());
			} else {
				for (uint64_t c = clusters; c < h.bitmap_len * 8; c++)
					FZ_CHECK(!(bm[c / 8] >> (c % 8) & 1));
			}
			free(bm);
		}
	}
	free(hdr);
	return 0;
}
