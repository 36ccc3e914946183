/* main.c - microvm's entry point: parse the command line, build the VM, run it, exit with its status. */
#include "vmm/cli/cli.h"
#include "base/err.h"
#include "base/exit_codes.h"
#include "base/log.h"
#include "vmm/sandbox/jail.h"
#include "vmm/sandbox/privdrop.h"
#include "vmm/quirks.h"
#include "vmm/cli/run.h"
#include "vmm/stats.h"
#include "vmm/api/client.h"
#include "vmm/api/control.h"
#include "vmm/vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/*
 * --run needs guest user programs that make system calls; where guest user
 * mode cannot (host_probe(), docs/host-quirks.md) the script would never run
 * and the guest would hang, so refuse before starting it.
 */
static int check_run_host(void)
{
	struct host_profile hp;
	bool overridden;
	int ret;

	if ((ret = host_probe(&hp)) < 0)
		return err_prefix(-ret, "--run: cannot tell whether this host runs guest user programs");
#ifdef MICROVM_TEST_HOOKS
	const char *override = getenv(RUN_TEST_OVERRIDE_ENV);
#else
	const char *override = NULL;
#endif
	if ((ret = run_check_host(&hp, override, &overridden)) < 0)
		return ret;
	if (overridden)
		log_warn("%s=1: starting --run although this host cannot run guest user programs "
			 "(for microvm's own tests: the test guest reads the script disk itself)",
			 RUN_TEST_OVERRIDE_ENV);
	return 0;
}

/* Everything after the command line: returns microvm's exit status. */
static int run_config(struct vmm_config *cfg, uint64_t start_ns)
{
	static struct vmm vmm; /* large (vCPU and console buffers): not on the stack */
	static struct control control;  /* --api-sock */
	struct run_disk run = { .path = "" };
	int ret;

	if (cfg->verbosity < 0)
		log_set_level(LOG_WARN);
	else if (cfg->verbosity > 0)
		log_set_level(LOG_DEBUG);

	cfg->start_ns = start_ns;

	/* --user: resolve it now (NSS reads files), switch once everything is open. */
	struct priv_target user = { 0 };
	if (cfg->user && priv_resolve(cfg->user, &user) < 0) {
		log_error("%s", err_msg());
		return MV_EXIT_USAGE;
	}

	/* --host-info: the probe VM's verdict, then exit (docs/host-quirks.md). */
	if (cfg->host_info) {
		if (quirk_host_info(stdout) < 0) {
			log_error("%s", err_msg());
			return MV_EXIT_ERROR;
		}
		return 0;
	}

	/* --jail: what cannot work is refused before anything starts (docs/jail.md). */
	char api_inside[PATH_MAX] = "";
	if (cfg->jail) {
		/*
		 * Inherited descriptors would follow the VMM into the jail: a directory among them
		 * would be a way out (openat "../.."). microvm takes none from its caller.
		 */
		if (syscall(SYS_close_range, 3, ~0U, 0) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		if (cfg->no_seccomp && !cfg->user) {
			log_error("--jail %s with --no-seccomp and no --user: the VMM would be root with every "
				  "system call inside the jail (able to mount its way out); add --user or drop "
				  "--no-seccomp", cfg->jail);
			return MV_EXIT_USAGE;
		}
		if (geteuid() != 0) {
			log_error("--jail %s: needs root (new namespaces and pivot_root need CAP_SYS_ADMIN); "
				  "--user drops root once the VMM is in the jail", cfg->jail);
			return MV_EXIT_USAGE;
		}
		if (jail_check_dir(cfg->jail, cfg->user != NULL, user.uid) < 0 ||
		    (cfg->api_sock && jail_api_path(cfg->jail, cfg->api_sock, api_inside, sizeof(api_inside)) < 0)) {
			log_error("%s", err_msg());
			return MV_EXIT_USAGE;
		}
	}
	/*
	 * --jail and --cgroup: a supervisor forks the VMM (PID 1 of a new PID namespace with
	 * --jail, in the group with --cgroup), waits for it and exits with its status; it
	 * stays outside the group and can report an OOM kill and remove the group.
	 */
	if (cfg->jail || cfg->cgroup.set) {
		struct cgroup cg = { .dirfd = -1, .procs_fd = -1 };
		pid_t pid;
		if (cfg->cgroup.set && cgroup_setup(&cfg->cgroup, &cg) < 0) {
			log_error("%s", err_msg());
			return MV_EXIT_ERROR;
		}
		if (supervise_start(cfg->jail != NULL, &pid) < 0) {
			log_error("%s", err_msg());
			cgroup_remove(&cg);
			return MV_EXIT_ERROR;
		}
		if (pid > 0) {
			ret = supervise_wait(pid, cfg->cgroup.set ? &cg : NULL, cfg->cgroup.memory_max);
			cgroup_remove(&cg);
			return ret;
		}
		/* The VMM, still single-threaded: into the group before any guest memory exists. */
		if (cfg->cgroup.set && cgroup_join(&cg) < 0) {
			log_error("%s", err_msg());
			return MV_EXIT_ERROR;
		}
	}
	/* --netns: the taps are made and opened in the namespace they belong to. */
	if (cfg->netns && jail_join_netns(cfg->netns) < 0) {
		log_error("%s", err_msg());
		return MV_EXIT_ERROR;
	}

	/* --run: the script becomes one more read-only disk and a command-line key. */
	if (cfg->run) {
		if (run_prepare(&run, cfg) < 0) {
			log_error("%s", err_msg());
			run_cleanup(&run);
			return MV_EXIT_ERROR;
		}
		log_info("--run %s: the script is on %s (read-only, id %s), microvm.run=%s on the command line",
			 cfg->run, cfg->run_dev, RUN_DISK_ID, cfg->run_dev);
	}
	struct vmm_door door = control_door(&control);
	ret = vmm_build(&vmm, cfg, &door);
	/* The disk is open (or the build failed): the temporary file can go now, so no exit leaves it behind. */
	run_remove_image(&run);
	if (ret == 0 && cfg->run)
		ret = check_run_host();
	/*
	 * The API socket (owner-only) belongs to the user microvm becomes, who must answer on it.
	 * By path, in a directory that user may own (the jail's): only a socket microvm's user
	 * owns is given away, and never through a symbolic link (lchown), so swapping the name
	 * for a link to another file between the bind and here gains nothing.
	 */
	if (ret == 0 && cfg->user && cfg->api_sock) {
		struct stat st;
		if (lstat(cfg->api_sock, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != geteuid())
			ret = err_set(EPERM, "--api-sock %s: no longer the socket microvm made (replaced meanwhile)",
				      cfg->api_sock);
		else if (lchown(cfg->api_sock, user.uid, user.gid) < 0)
			ret = err_set(errno, "--api-sock %s: cannot give it to --user %s: %s", cfg->api_sock, cfg->user,
				      strerror(errno));
	}
	/* Everything that needs a path or a privilege is open: /dev/kvm, the disks, the taps. */
	if (ret == 0 && cfg->jail && (ret = jail_enter(cfg->jail, vmm.cfg.cpus)) == 0) {
		/* The same socket, seen from inside: its removal at exit. */
		if (cfg->api_sock && api_set_path(&control.server, api_inside) < 0)
			ret = err_set(ENOMEM, "--api-sock: out of memory");
		else
			log_info("--jail %s: the VMM now sees only this directory (PID %d of its own namespace)",
				 cfg->jail, (int)getpid());
	}
	if (ret == 0 && cfg->user && (ret = priv_drop(&user)) == 0)
		log_info("--user %s: now running as uid %u, gid %u, without a way back to root", cfg->user,
			 (unsigned)user.uid, (unsigned)user.gid);
	/* The credential change cleared the supervisor's parent-death signal: the VMM must not outlive it. */
	if (ret == 0 && (cfg->jail || cfg->cgroup.set) && cfg->user)
		ret = jail_after_drop();
	if (ret < 0) {
		log_error("%s", err_msg());
		vmm_destroy(&vmm);
		run_cleanup(&run);
		return MV_EXIT_ERROR;
	}
	ret = vmm_run(&vmm);
	vmm_destroy(&vmm);
	run_cleanup(&run);
	return ret;
}

/* --shutdown SOCKET: 0 once that VM has exited, 124 if it still runs at --timeout, 1 otherwise. */
static int shutdown_client(const struct vmm_config *cfg)
{
	if (cfg->verbosity < 0)
		log_set_level(LOG_WARN);
	int ret = api_client_shutdown(cfg->shutdown_sock, cfg->timeout_ms ? cfg->timeout_ms
									   : API_CLIENT_SHUTDOWN_DEFAULT_MS);
	if (ret == 0) {
		log_info("--shutdown %s: the VM powered off", cfg->shutdown_sock);
		return 0;
	}
	log_error("%s", err_msg());
	return ret == -ETIMEDOUT ? MV_EXIT_TIMEOUT : MV_EXIT_ERROR;
}

int main(int argc, char **argv)
{
	uint64_t start_ns = stats_now_ns();
	static struct vmm_config cfg;
	int ret;

	ret = cli_parse(argc, argv, &cfg, stdout);
	if (ret == 1)
		ret = 0;
	else if (ret < 0)
		log_error("%s", err_msg()), ret = MV_EXIT_USAGE;
	else if (cfg.shutdown_sock)
		ret = shutdown_client(&cfg);
	else
		ret = run_config(&cfg, start_ns);
	config_free(&cfg);
	return ret;
}
