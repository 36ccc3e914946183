/*
 * jail.h - --jail DIR and --netns PATH: the VMM process sees only DIR, in namespaces of its
 * own, with tight resource limits (README "Security and reliability", docs/jail.md).
 *
 * The order, in main() (docs/jail.md has the reasons): (1) --cgroup: cgroup_setup();
 * (2) supervise_start() forks the VMM, PID 1 of a new PID namespace with --jail, which
 * joins the group at once (cgroup_join()); (3) --netns: jail_join_netns(), before the taps
 * open; (4) the VMM opens everything: kernel, disks, taps, snapshot, /dev/kvm, the API
 * socket; (5) jail_enter(): new mount, IPC and UTS namespaces, DIR becomes / (pivot_root,
 * the old root detached), rlimits; (6) --user (priv_drop()), jail_after_drop(); (7) the
 * seccomp filters as the threads start; then the guest runs.
 */
#ifndef MICROVM_JAIL_H
#define MICROVM_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/sandbox/cgroup.h"

/* Descriptors a jailed VMM may open beyond those it has when it enters (API clients, snapshot files). */
#define JAIL_FD_HEADROOM 64
/* Threads a jailed VMM may start beyond one per vCPU (I/O, its workers, console, signals, prefetch). */
#define JAIL_THREAD_HEADROOM 16

/*
 * Check DIR for --jail: an absolute, canonical path (no symbolic link, no "." or ".."
 * component, not "/") to a directory owned by the caller (euid) or by user_uid (the
 * --user, when has_user), writable by no one else (no group or other write bit). Returns
 * 0 or -errno with err_msg() ("--jail DIR: ...").
 */
int jail_check_dir(const char *dir, bool has_user, uid_t user_uid);

/*
 * path (absolute, canonical) as the jailed process sees it: the part after dir (which is
 * canonical, without a trailing '/'), "/" for dir itself. Returns 0, or -EXDEV when path
 * is not inside dir, -ENAMETOOLONG when out is too small. Pure.
 */
int jail_rebase(const char *dir, const char *path, char *out, size_t size);

/*
 * --api-sock PATH under --jail: PATH's directory must exist inside DIR (resolved with
 * realpath()). Fills inside with the socket's path in the jail. Returns 0 or -EXDEV/-errno
 * with err_msg() ("--api-sock PATH: ...").
 */
int jail_api_path(const char *dir, const char *sock, char *inside, size_t size);

/* Join the network namespace at path (setns). Returns 0 or -errno with err_msg() ("--netns PATH: ..."). */
int jail_join_netns(const char *path);

/*
 * Enter the jail: the caller must be single-threaded, everything it needs already open.
 * New mount, IPC and UTS namespaces; every mount made private; DIR bind-mounted on itself
 * (nosuid, nodev, noexec) and made / with pivot_root, the old root unmounted (MNT_DETACH);
 * cwd /. Then RLIMIT_CORE 0, RLIMIT_NOFILE the highest open descriptor + 1 +
 * JAIL_FD_HEADROOM, RLIMIT_NPROC cpus + JAIL_THREAD_HEADROOM. Returns 0 or -errno with
 * err_msg(); the process must then not go on.
 */
int jail_enter(const char *dir, int cpus);

/* After --user: the credential change cleared the parent-death signal; set it again. */
int jail_after_drop(void);

/*
 * Fork the VMM from a supervisor (--jail or --cgroup). new_pid: the child is PID 1 of a
 * new PID namespace. SIGINT, SIGTERM and SIGHUP stay blocked in the child (vmm_run()
 * takes them from a signalfd, so one that arrives during set-up stops the VM as soon as
 * it runs); the child dies with SIGKILL if the supervisor does. Returns 0 in the child
 * (*pid 0) and in the parent (*pid the child's), or -errno with err_msg() (no child).
 */
int supervise_start(bool new_pid, pid_t *pid);

/*
 * The supervisor: forward SIGINT, SIGTERM and SIGHUP sent to it by a process (kill(1), a
 * service manager) to the child, wait for it, and return the exit status microvm should
 * have: the child's own; MV_EXIT_OOM with one line when it was killed by SIGKILL and
 * cg's oom_kill count grew (cg may be NULL); 128 + N with one line for another signal N.
 * The terminal's settings are restored when the child could not do it itself.
 */
int supervise_wait(pid_t pid, const struct cgroup *cg, const char *memory_max);

#endif
