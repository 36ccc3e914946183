/*
 * cgroup.h - --cgroup PATH[,memory.max=SIZE][,cpu.max=QUOTA[/PERIOD]][,pids.max=N]: run the VM
 * in a cgroup v2 group under /sys/fs/cgroup, with the limits microvm writes into it
 * (docs/jail.md). Guest RAM is the VMM's own memory, so it counts against memory.max.
 */
#ifndef MICROVM_CGROUP_H
#define MICROVM_CGROUP_H

#include <stdbool.h>
#include <stdint.h>

#define CGROUP_ROOT     "/sys/fs/cgroup"
#define CGROUP_PATH_MAX 256          /* the group's path under CGROUP_ROOT */
#define CGROUP_DEPTH_MAX 16          /* components */

/* What --cgroup asked for (cgroup_parse()). The values are as the kernel's files take them. */
struct cgroup_config {
	bool set;
	char path[CGROUP_PATH_MAX];  /* "a/b": relative to CGROUP_ROOT, no "", "." or ".." component */
	char memory_max[24];         /* "" not set; bytes or "max" */
	char cpu_max[48];            /* "" not set; "QUOTA PERIOD" or "max PERIOD" (microseconds) */
	char pids_max[16];           /* "" not set; a number or "max" */
};

/*
 * Parse "PATH[,memory.max=SIZE|max][,cpu.max=QUOTA[/PERIOD]|max[/PERIOD]][,pids.max=N|max]"
 * into c. PATH: a leading '/' is allowed; letters, digits, '-', '_', '.', '@', ':' and '/'
 * between components, none empty, "." or ".."; SIZE: bytes with an optional K/M/G/T suffix
 * (powers of 1024), at least 1 MiB; QUOTA 1000 us or more, PERIOD 1000 to 1000000 us (default
 * 100000); N 1 to 4194304. name starts the message. Returns 0 or -EINVAL with err_msg(). Pure.
 */
int cgroup_parse(const char *name, const char *val, struct cgroup_config *c);

/* A group set up by cgroup_setup(), for cgroup_join(), the OOM count and cgroup_remove(). */
struct cgroup {
	int dirfd;                  /* the group's directory, -1: none */
	int procs_fd;               /* its cgroup.procs, open for cgroup_join(); -1 after */
	int created;                /* how many trailing components microvm made (removed at exit) */
	long long oom_kills;        /* memory.events oom_kill before the VM started; -1: no memory controller */
	char path[CGROUP_PATH_MAX];
};

/*
 * Check that cgroup v2 is mounted at CGROUP_ROOT and has the controllers c's values need;
 * enable them in the cgroup.subtree_control of every group from the root down to the
 * group's parent where they are not yet; create the missing components (0755); write
 * the values (memory.max also sets memory.swap.max to 0 where that file exists, so the
 * limit is RAM, not RAM plus swap); open the group's cgroup.procs. Returns 0 or -errno
 * with err_msg() ("--cgroup PATH: ..."); on failure what was made is removed.
 */
int cgroup_setup(const struct cgroup_config *c, struct cgroup *cg);

/*
 * Move the calling process into the group (writes 0 to cgroup.procs: the caller, with
 * every thread it has; call it single-threaded, before the guest's memory exists), then
 * close what the child does not need. Returns 0 or -errno with err_msg().
 */
int cgroup_join(struct cgroup *cg);

/* Close the descriptors without touching the group (a process that did not join). */
void cgroup_close(struct cgroup *cg);

/* The group's memory.events oom_kill count now; -1 when it cannot be read. */
long long cgroup_oom_kills(const struct cgroup *cg);

/* Remove the components microvm created (leaf first; a group still in use stays), close. */
void cgroup_remove(struct cgroup *cg);

#endif
