/* fuzz_workingset.c - libFuzzer harness: a snapshot's working-set file (vmm/workingset.c, ws_parse()). */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "base/err.h"
#include "vmm/workingset.h"

#define CRC 0x5eed5eedu
#define RAM (1ULL << 30)

/*
 * Input: one byte of mode, then the file. Mode bit 0 set: the input is the
 * ranges only, and the harness writes a header for this snapshot (version 1,
 * the range count, the state CRC and RAM size the parse is given) and the
 * trailing CRC, so the fuzzer reaches the range checks; clear: the input is
 * the whole file as it is. An accepted file has only non-empty, page-aligned,
 * sorted, non-overlapping ranges inside RAM; every refusal has a message and
 * leaves no ranges.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++, size--;
	uint8_t *buf;
	size_t len;
	if (mode & 1) {
		uint32_t n = (uint32_t)(size / 16);
		len = WS_HEADER_SIZE + (size_t)n * 16 + 4;
		buf = malloc(len);
		if (!buf)
			return 0;
		uint8_t *hdr = ws_encode(NULL, 0, CRC, RAM, &(size_t){ 0 });
		if (!hdr) {
			free(buf);
			return 0;
		}
		memcpy(buf, hdr, WS_HEADER_SIZE);
		free(hdr);
		memcpy(buf + 16, &n, 4);
		memcpy(buf + WS_HEADER_SIZE, data, (size_t)n * 16);
		uint32_t c = (uint32_t)crc32(0, buf, (uInt)(len - 4));
		memcpy(buf + len - 4, &c, 4);
	} else {
		len = size;
		buf = malloc(len ? len : 1);
		if (!buf)
			return 0;
		memcpy(buf, data, size);
	}
	struct ws_range *r;
	uint32_t n;
	err_clear();
	if (ws_parse(buf, len, CRC, RAM, &r, &n) < 0) {
		if (!*err_msg() || r || n)
			abort();
	} else {
		uint64_t end = 0;
		for (uint32_t i = 0; i < n; i++) {
			if (!r[i].len || r[i].off % WS_PAGE || r[i].len % WS_PAGE || r[i].off < end ||
			    r[i].off + r[i].len > RAM || r[i].off + r[i].len < r[i].off)
				abort();
			end = r[i].off + r[i].len;
		}
		free(r);
	}
	free(buf);
	return 0;
}
