/* privdrop.h - --user: after set-up, run as an unprivileged user (README, "Security and reliability"). */
#ifndef MICROVM_PRIVDROP_H
#define MICROVM_PRIVDROP_H

#include <sys/types.h>

struct priv_target {
	uid_t uid;
	gid_t gid;
	char name[64];  /* for messages: the user as given */
};

/*
 * Resolve a --user value: "USER" (its primary group), "USER:GROUP", or
 * numeric "UID:GID" (also for ids without a passwd/group entry); a numeric
 * UID alone needs a passwd entry for its group. Returns 0 or -EINVAL with
 * err_msg() ("--user nosuch: no such user", ...). Call it before anything
 * is started: it may read /etc/passwd and /etc/group through NSS.
 */
int priv_resolve(const char *spec, struct priv_target *t);

/*
 * Become t for good, in every thread of the process: supplementary groups
 * = {gid}, real/effective/saved gid and uid, no new privileges
 * (PR_SET_NO_NEW_PRIVS), and check that uid 0 cannot be regained. Only root
 * (CAP_SETUID/CAP_SETGID) may switch to another user; a non-root process
 * asked to become itself just sets no-new-privileges. Returns 0 or -errno
 * with err_msg(): then the process must not go on.
 */
int priv_drop(const struct priv_target *t);

#endif
