/* config_file.h - --config FILE: the command line's settings from a JSON file (docs/config.md). */
#ifndef MICROVM_CONFIG_FILE_H
#define MICROVM_CONFIG_FILE_H

#include <stddef.h>

#include "vmm/config.h"

#define CONFIG_MAX_SIZE (1 << 20)  /* a VM description is a few hundred bytes; refuse more than 1 MiB */

/*
 * Read the JSON file at path (a regular file or a pipe, at most
 * CONFIG_MAX_SIZE bytes) and apply it to cfg with config_file_parse(), relative
 * paths in it taken from path's directory. Returns 0 or -EINVAL with
 * err_msg() ("--config PATH: ..."): a missing or unreadable file, a
 * directory, a file over the limit, or any error of config_file_parse().
 */
int config_file_load(const char *path, struct vmm_config *cfg);

/*
 * Apply the JSON text buf[0..len) to cfg (which holds the defaults or more):
 * one object whose keys are the settings of docs/config.md, each handed to
 * config_set() as its command-line form. Strings are copied into cfg->owned
 * (config_free() frees them). Relative kernel, initrd, run and disk paths get
 * dir in front ("" or NULL: left as they are). name starts every message.
 * Returns 0 or -EINVAL with err_msg() naming the file and the key: not JSON
 * (json-c's reason, line and column), not an object, an unknown key, a value
 * of the wrong type, a NUL byte, a value config_set() refuses.
 */
int config_file_parse(const char *name, const char *dir, const char *buf, size_t len, struct vmm_config *cfg);

#endif
