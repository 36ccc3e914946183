/* stats.c - boot milestones, exit counters and their text and JSON forms (see stats.h). */
#include "vmm/stats.h"

#include <string.h>
#include <time.h>

uint64_t stats_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct timespec stats_deadline_ts(clockid_t clk, unsigned ms)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void exit_stats_sum(const struct exit_stats *per_vcpu, int n, struct exit_stats *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (int v = 0; v < n; v++) {
		const struct exit_stats *s = &per_vcpu[v];
		for (int i = 0; i < VMEXIT_KIND_COUNT; i++)
			sum->kind[i] += s->kind[i];
		for (int i = 0; i <= BUS_MAX_RANGES; i++) {
			sum->pio[i] += s->pio[i];
			sum->mmio[i] += s->mmio[i];
		}
		for (int i = 0; i < QUIRK_KIND_COUNT; i++) {
			sum->quirk[i] += s->quirk[i];
			if (s->quirk_name[i])
				sum->quirk_name[i] = s->quirk_name[i];
		}
	}
}

void boot_times_output(struct boot_times *t, const uint8_t *buf, size_t len, uint64_t (*clock)(void))
{
	static const char mark[] = STATS_INIT_MARK;

	if (!len)
		return;
	if (!atomic_load_explicit(&t->first_output, memory_order_relaxed))
		atomic_store(&t->first_output, clock());
	if (atomic_load_explicit(&t->run_init, memory_order_relaxed))
		return;
	/* The mark's first byte occurs only at its start, so a mismatch restarts the match simply. */
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == (uint8_t)mark[t->mark_pos])
			t->mark_pos++;
		else
			t->mark_pos = buf[i] == (uint8_t)mark[0] ? 1 : 0;
		if (t->mark_pos == sizeof(mark) - 1) {
			atomic_store(&t->run_init, clock());
			return;
		}
	}
}

void boot_times_guest_end(struct boot_times *t, uint64_t now)
{
	unsigned long long zero = 0;

	atomic_compare_exchange_strong(&t->guest_end, &zero, now);
}

static double rel_ms(uint64_t start, uint64_t when)
{
	if (!when || when < start)
		return -1.0;
	return (double)(when - start) / 1e6;
}

static int fill_devs(struct stats_dev *rows, const uint64_t *counts, const struct bus *bus)
{
	int n = 0;

	for (int i = 0; bus && i < bus->nr; i++)
		if (counts[i])
			rows[n++] = (struct stats_dev){ bus->range[i].name, bus->range[i].base,
							bus->range[i].size, counts[i] };
	if (counts[STATS_UNMAPPED])
		rows[n++] = (struct stats_dev){ "(no device)", 0, 0, counts[STATS_UNMAPPED] };
	return n;
}

void stats_report_fill(struct stats_report *r, const struct boot_times *t,
		       const struct exit_stats *sum, int nr_vcpus, const struct bus *pio,
		       const struct bus *mmio, int exit_status)
{
	memset(r, 0, sizeof(*r));
	r->exit_status = exit_status;
	r->loaded_ms = rel_ms(t->start, t->loaded);
	r->vm_created_ms = rel_ms(t->start, t->vm_created);
	r->vcpus_ready_ms = rel_ms(t->start, t->vcpus_ready);
	r->sandbox_ready_ms = rel_ms(t->start, t->sandbox_ready);
	r->guest_start_ms = rel_ms(t->start, atomic_load(&t->guest_start));
	r->first_output_ms = rel_ms(t->start, atomic_load(&t->first_output));
	r->run_init_ms = rel_ms(t->start, atomic_load(&t->run_init));
	r->guest_end_ms = rel_ms(t->start, atomic_load(&t->guest_end));
	r->exit_ms = rel_ms(t->start, t->exit);
	r->nr_vcpus = nr_vcpus;
	memcpy(r->kind, sum->kind, sizeof(r->kind));
	r->nr_pio = fill_devs(r->pio, sum->pio, pio);
	r->nr_mmio = fill_devs(r->mmio, sum->mmio, mmio);
	for (int i = 0; i < QUIRK_KIND_COUNT; i++)
		if (sum->quirk[i]) {
			r->quirks[r->nr_quirks].name = sum->quirk_name[i] ? sum->quirk_name[i] : "?";
			r->quirks[r->nr_quirks].count = sum->quirk[i];
			r->nr_quirks++;
		}
}

static uint64_t total_exits(const struct stats_report *r)
{
	uint64_t n = 0;

	/* VMEXIT_INTR is microvm kicking its own vCPUs, not a guest exit. */
	for (int i = 0; i < VMEXIT_KIND_COUNT; i++)
		if (i != VMEXIT_INTR)
			n += r->kind[i];
	return n;
}

#define P "microvm: stats: "

static void print_time(FILE *out, const char *label, double ms)
{
	if (ms < 0)
		fprintf(out, P "  %-22s %12s\n", label, "-");
	else
		fprintf(out, P "  %-22s %12.3f ms\n", label, ms);
}

static void print_devs(FILE *out, const char *title, const char *space, const struct stats_dev *d,
		       int n)
{
	if (!n)
		return;
	fprintf(out, P "%s exits by device:\n", title);
	for (int i = 0; i < n; i++) {
		char where[48] = "";
		if (d[i].size)
			snprintf(where, sizeof(where), "%s 0x%llx-0x%llx", space,
				 (unsigned long long)d[i].base,
				 (unsigned long long)(d[i].base + d[i].size - 1));
		fprintf(out, P "  %-22s %-26s %12llu\n", d[i].name, where,
			(unsigned long long)d[i].exits);
	}
}

void stats_print_text(FILE *out, const struct stats_report *r)
{
	fprintf(out, P "time since microvm started:\n");
	print_time(out, "guest loaded", r->loaded_ms);
	print_time(out, "VM created", r->vm_created_ms);
	print_time(out, "vCPUs ready", r->vcpus_ready_ms);
	print_time(out, "sandbox ready", r->sandbox_ready_ms);
	print_time(out, "guest started", r->guest_start_ms);
	print_time(out, "first guest output", r->first_output_ms);
	print_time(out, "init started", r->run_init_ms);
	print_time(out, "guest ended", r->guest_end_ms);
	print_time(out, "exit", r->exit_ms);
	fprintf(out, P "VM exits (%d vCPU%s): %llu\n", r->nr_vcpus, r->nr_vcpus == 1 ? "" : "s",
		(unsigned long long)total_exits(r));
	for (int i = 0; i < VMEXIT_KIND_COUNT; i++)
		if (r->kind[i] && i != VMEXIT_INTR)
			fprintf(out, P "  %-22s %12llu\n", vmexit_kind_name((enum vm_exit_kind)i),
				(unsigned long long)r->kind[i]);
	print_devs(out, "port I/O", "port", r->pio, r->nr_pio);
	print_devs(out, "MMIO", "mmio", r->mmio, r->nr_mmio);
	if (r->nr_quirks) {
		fprintf(out, P "emulation failures completed by microvm:\n");
		for (int i = 0; i < r->nr_quirks; i++)
			fprintf(out, P "  %-22s %12llu\n", r->quirks[i].name,
				(unsigned long long)r->quirks[i].count);
	}
	fprintf(out, P "exit status %d\n", r->exit_status);
	fflush(out);
}

/* A JSON string: the names are ours (device names, mnemonics), but escape anyway. */
static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_ms(FILE *out, const char *key, double ms, bool comma)
{
	fprintf(out, "\"%s\":", key);
	if (ms < 0)
		fputs("null", out);
	else
		fprintf(out, "%.3f", ms);
	if (comma)
		fputc(',', out);
}

static void json_devs(FILE *out, const struct stats_dev *d, int n)
{
	fputc('[', out);
	for (int i = 0; i < n; i++) {
		fputs(i ? ",{\"device\":" : "{\"device\":", out);
		json_str(out, d[i].name);
		if (d[i].size)
			fprintf(out, ",\"base\":%llu,\"size\":%llu", (unsigned long long)d[i].base,
				(unsigned long long)d[i].size);
		fprintf(out, ",\"exits\":%llu}", (unsigned long long)d[i].exits);
	}
	fputc(']', out);
}

void stats_print_json(FILE *out, const struct stats_report *r)
{
	fprintf(out, "{\"microvm_stats\":1,\"exit_status\":%d,\"vcpus\":%d,\"ms\":{", r->exit_status,
		r->nr_vcpus);
	json_ms(out, "loaded", r->loaded_ms, true);
	json_ms(out, "vm_created", r->vm_created_ms, true);
	json_ms(out, "vcpus_ready", r->vcpus_ready_ms, true);
	json_ms(out, "sandbox_ready", r->sandbox_ready_ms, true);
	json_ms(out, "guest_start", r->guest_start_ms, true);
	json_ms(out, "first_output", r->first_output_ms, true);
	json_ms(out, "run_init", r->run_init_ms, true);
	json_ms(out, "guest_end", r->guest_end_ms, true);
	json_ms(out, "exit", r->exit_ms, false);
	fprintf(out, "},\"exits\":{\"total\":%llu", (unsigned long long)total_exits(r));
	for (int i = 0; i < VMEXIT_KIND_COUNT; i++)
		if (i != VMEXIT_INTR)
			fprintf(out, ",\"%s\":%llu", vmexit_kind_name((enum vm_exit_kind)i),
				(unsigned long long)r->kind[i]);
	fputs("},\"pio\":", out);
	json_devs(out, r->pio, r->nr_pio);
	fputs(",\"mmio\":", out);
	json_devs(out, r->mmio, r->nr_mmio);
	fputs(",\"quirks\":{", out);
	for (int i = 0; i < r->nr_quirks; i++) {
		if (i)
			fputc(',', out);
		json_str(out, r->quirks[i].name);
		fprintf(out, ":%llu", (unsigned long long)r->quirks[i].count);
	}
	fputs("}}\n", out);
	fflush(out);
}
