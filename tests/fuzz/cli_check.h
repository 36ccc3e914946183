/* cli_check.h - what fuzz_cli and fuzz_config check in an accepted configuration: every value in range. */
#ifndef MICROVM_FUZZ_CLI_CHECK_H
#define MICROVM_FUZZ_CLI_CHECK_H

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/machine.h"
#include "fuzz.h"
#include "vmm/cli/cli.h"
#include "vmm/cmdline.h"

static inline bool printable_id(const char *s)
{
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

static inline void check_net(const struct net_config *n)
{
	size_t len = strnlen(n->tap, sizeof(n->tap));

	FZ_CHECK(len > 0 && len <= CFG_TAP_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		FZ_CHECK(isalnum((unsigned char)n->tap[i]) || strchr("-_.", n->tap[i]));
	FZ_CHECK(!(n->has_mac && n->random_mac));
	if (n->has_mac) {
		FZ_CHECK(!(n->mac[0] & 1));
		FZ_CHECK(n->mac[0] | n->mac[1] | n->mac[2] | n->mac[3] | n->mac[4] | n->mac[5]);
	}
}

static inline void check_disk(const struct disk_config *d)
{
	FZ_CHECK(memchr(d->path, '\0', sizeof(d->path)) && d->path[0]);
	FZ_CHECK(memchr(d->id, '\0', sizeof(d->id)) && printable_id(d->id));
}

/* An accepted --cgroup: a relative path of allowed characters without "", "." or ".." components;
 * values only as the kernel's files take them. */
static inline void check_cgroup(const struct cgroup_config *g)
{
	const char *p = g->path;
	size_t len = strnlen(p, sizeof(g->path));

	FZ_CHECK(len > 0 && len < sizeof(g->path) && p[0] != '/' && p[len - 1] != '/');
	FZ_CHECK(!strstr(p, "//") && strcmp(p, ".") && strcmp(p, "..") && strncmp(p, "./", 2) &&
		 strncmp(p, "../", 3) && !strstr(p, "/./") && !strstr(p, "/../"));
	FZ_CHECK(!(len >= 2 && !strcmp(p + len - 2, "/.")) && !(len >= 3 && !strcmp(p + len - 3, "/..")));
	for (size_t i = 0; i < len; i++)
		FZ_CHECK(isalnum((unsigned char)p[i]) || strchr("-_.@:/", p[i]));
	const char *vals[] = { g->memory_max, g->cpu_max, g->pids_max };
	for (int k = 0; k < 3; k++)
		for (const char *v = vals[k]; *v; v++)
			FZ_CHECK(isdigit((unsigned char)*v) || *v == ' ' || strchr("max", *v));
}

/*
 * The guest's command line built from c (vmm/cmdline.h): the user's line
 * exactly, and with host options added, those among the kernel's words
 * (before any "--") wherever the user put "--".
 */
static inline void check_guest_cmdline(const struct vmm_config *c)
{
	struct cmdline_parts p = cmdline_parts(c, NULL);
	char *s;

	FZ_CHECK(cmdline_compose(&p, SIZE_MAX, &s) == 0);
	FZ_CHECK(!strcmp(s, c->cmdline));
	free(s);
	p.host_opts = "fz.host=1";
	FZ_CHECK(cmdline_compose(&p, SIZE_MAX, &s) == 0);
	FZ_CHECK(cmdline_has_word(s, "fz.host", CMDLINE_KEY));
	free(s);
}

static inline void check_config(const struct vmm_config *c)
{
	FZ_CHECK(c->kernel || c->host_info || c->restore || c->shutdown_sock);
	/* --shutdown: a client of another VM's API; nothing but --timeout, -q and -v came with it. */
	FZ_CHECK(!c->shutdown_sock || (!c->kernel && !c->restore && !c->run && c->shutdown_sock[0]));
	/* --restore: the snapshot is the machine; no flag that describes one came with it. */
	FZ_CHECK(!c->restore || (!c->kernel && !c->initrd && !c->run && !c->machine_set && c->restore[0]));
	FZ_CHECK(c->cmdline);
	FZ_CHECK(!c->run_dev[0]);   /* set by run_prepare() only, after the command line */
	check_guest_cmdline(c);
	FZ_CHECK(c->mem >= MV_MEM_MIN && c->mem <= MV_MEM_MAX && c->mem % (1 << 20) == 0);
	FZ_CHECK(c->cpus >= 1 && c->cpus <= MV_MAX_VCPUS);
	FZ_CHECK(c->nr_disks >= 0 && c->nr_disks <= CFG_MAX_DISKS);
	FZ_CHECK(!c->run || c->nr_disks < CFG_MAX_DISKS);
	for (int i = 0; i < c->nr_disks; i++)
		check_disk(&c->disks[i]);
	FZ_CHECK(c->nr_nics >= 0 && c->nr_nics <= CFG_MAX_NICS);
	for (int i = 0; i < c->nr_nics; i++) {
		check_net(&c->nics[i]);
		for (int j = 0; j < i; j++)
			FZ_CHECK(strcmp(c->nics[i].tap, c->nics[j].tap) != 0);
	}
	FZ_CHECK(c->timeout_ms <= (uint64_t)(CFG_TIMEOUT_MAX_S * 1000.0 + 1));
	FZ_CHECK(c->verbosity >= -1 && c->verbosity <= 1);
	if (c->cgroup.set)
		check_cgroup(&c->cgroup);
	FZ_CHECK(!c->jail || c->jail[0] == '/');
	FZ_CHECK(!c->netns || c->netns[0] == '/');
	FZ_CHECK(!(c->jail && c->record_ws_ms));
}

#endif
