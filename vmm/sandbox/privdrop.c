/* privdrop.c - --user: resolve the user, then drop root for good (see privdrop.h). */
#include "vmm/sandbox/privdrop.h"
#include "base/err.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* A decimal id that fits (and is not (id_t)-1); false otherwise. */
static bool parse_id(const char *s, unsigned long *out)
{
	char *end;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v >= (unsigned long)(uid_t)-1)
		return false;
	*out = v;
	return true;
}

int priv_resolve(const char *spec, struct priv_target *t)
{
	char user[64], *group;
	unsigned long id;

	memset(t, 0, sizeof(*t));
	if (!spec || !*spec || strlen(spec) >= sizeof(user))
		return err_set(EINVAL, "--user '%s': give USER, USER:GROUP or UID:GID", spec ? spec : "");
	snprintf(t->name, sizeof(t->name), "%s", spec);
	snprintf(user, sizeof(user), "%s", spec);
	group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (!*user || (group && !*group))
		return err_set(EINVAL, "--user %s: give USER, USER:GROUP or UID:GID", spec);

	struct passwd *pw = parse_id(user, &id) ? getpwuid((uid_t)id) : getpwnam(user);
	if (pw)
		t->uid = pw->pw_uid, t->gid = pw->pw_gid;
	else if (parse_id(user, &id) && group)
		t->uid = (uid_t)id;
	else if (parse_id(user, &id))
		return err_set(EINVAL, "--user %s: uid %lu has no passwd entry; give its group too (UID:GID)",
			       spec, id);
	else
		return err_set(EINVAL, "--user %s: no such user", spec);

	if (group) {
		struct group *gr = parse_id(group, &id) ? NULL : getgrnam(group);
		if (gr)
			t->gid = gr->gr_gid;
		else if (parse_id(group, &id))
			t->gid = (gid_t)id;
		else
			return err_set(EINVAL, "--user %s: no such group '%s'", spec, group);
	}
	return 0;
}

int priv_drop(const struct priv_target *t)
{
	if (geteuid() != 0) {
		if (t->uid != getuid() || t->uid != geteuid() || t->gid != getgid() || t->gid != getegid())
			return err_set(EPERM, "--user %s: only root can switch users (microvm runs as uid %u)",
				       t->name, (unsigned)geteuid());
	} else {
		/* Groups first: once the uid is not 0, they can no longer be changed. */
		if (setgroups(1, &t->gid) < 0)
			return err_set(errno, "--user %s: setgroups: %s", t->name, strerror(errno));
		if (setresgid(t->gid, t->gid, t->gid) < 0)
			return err_set(errno, "--user %s: setresgid(%u): %s", t->name, (unsigned)t->gid,
				       strerror(errno));
		if (setresuid(t->uid, t->uid, t->uid) < 0)
			return err_set(errno, "--user %s: setresuid(%u): %s", t->name, (unsigned)t->uid,
				       strerror(errno));
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return err_set(errno, "--user %s: PR_SET_NO_NEW_PRIVS: %s", t->name, strerror(errno));
	/* Belt and braces: root must be gone for good (unless root was asked for). */
	if (t->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return err_set(EPERM, "--user %s: uid 0 could be regained after the switch", t->name);
	uid_t r, e, s;
	gid_t rg, eg, sg;
	if (getresuid(&r, &e, &s) < 0 || getresgid(&rg, &eg, &sg) < 0 || r != t->uid || e != t->uid ||
	    s != t->uid || rg != t->gid || eg != t->gid || sg != t->gid)
		return err_set(EPERM, "--user %s: the switch did not take effect", t->name);
	return 0;
}
