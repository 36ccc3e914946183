/* test_config.c - --config FILE: every accepted form, every error, precedence over the command line, relative paths. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "firmware/machine.h"
#include "vmm/cli/cli.h"
#include "vmm/cli/config_file.h"
#include "base/err.h"

static char dir[64];        /* a fresh directory per test */
static char path[128];      /* dir/vm.json */
static struct vmm_config cfg;

static void setup(void)
{
	strcpy(dir, "/tmp/microvm-config.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.json", dir);
}

static void teardown(void)
{
	char cmd[128];

	config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_file(const char *p, const char *data, size_t len)
{
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* Write json to dir/vm.json and parse "microvm --config dir/vm.json ARGS...". */
static int parse_v(const char *json, ...)
{
	char *argv[32] = { "microvm", "--config", path };
	int argc = 3;
	va_list ap;

	if (json)
		write_file(path, json, strlen(json));
	va_start(ap, json);
	while ((argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	FILE *null = fopen("/dev/null", "w");
	config_free(&cfg);
	err_clear();
	int ret = cli_parse(argc, argv, &cfg, null);
	fclose(null);
	return ret;
}

#define parse(...) parse_v(__VA_ARGS__, NULL)

/* Expect json (and the flags) to be refused with a message containing want. */
#define REFUSED(want, json, ...)                                                                         \
	do {                                                                                             \
		cr_assert_eq(parse(json, ##__VA_ARGS__), -EINVAL, "accepted: %s", json);           \
		cr_assert_not_null(strstr(err_msg(), want), "%s: got '%s', want '%s'", json, err_msg(), want); \
		cr_assert_not_null(strstr(err_msg(), "--config "), "no file name: %s", err_msg());      \
	} while (0)

static char *in_dir(const char *p)
{
	static char buf[4][256];
	static int n;
	char *b = buf[n++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s", dir, p);
	return b;
}

Test(config, every_key)
{
	int ret = parse("{\"kernel\": \"bzImage\", \"initrd\": \"initrd.img\", \"cmdline\": \"console=ttyS0 quiet\",\n"
			" \"mem\": \"512M\", \"cpus\": 2,\n"
			" \"disks\": [{\"path\": \"root.ext4\", \"ro\": false, \"direct\": false, \"id\": \"root\"},\n"
			"           \"data.img,ro,direct,id=data\"],\n"
			" \"nets\": [{\"tap\": \"tap0\", \"mac\": \"02:00:00:00:00:07\"}, \"tap=tap1,mac=random\"],\n"
			" \"io_engine\": \"sync\", \"cmdline_devices\": true, \"no_host_quirks\": true,\n"
			" \"no_seccomp\": true,"
			" \"timeout\": 30, \"stats\": \"json\", \"run\": \"test.sh\", \"user\": \"nobody\",\n"
			" \"api_sock\": \"vm.sock\"}");

	cr_assert_eq(ret, 0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, in_dir("bzImage"));
	cr_assert_str_eq(cfg.initrd, in_dir("initrd.img"));
	cr_assert_str_eq(cfg.cmdline, "console=ttyS0 quiet");
	cr_assert_eq(cfg.mem, 512ULL << 20);
	cr_assert_eq(cfg.cpus, 2);
	cr_assert_eq(cfg.nr_disks, 2);
	cr_assert_str_eq(cfg.disks[0].path, in_dir("root.ext4"));
	cr_assert_not(cfg.disks[0].ro);
	cr_assert_not(cfg.disks[0].direct);
	cr_assert_str_eq(cfg.disks[0].id, "root");
	cr_assert_str_eq(cfg.disks[1].path, in_dir("data.img"));
	cr_assert(cfg.disks[1].ro);
	cr_assert(cfg.disks[1].direct);
	cr_assert_str_eq(cfg.disks[1].id, "data");
	cr_assert_eq(cfg.nr_nics, 2);
	cr_assert_str_eq(cfg.nics[0].tap, "tap0");
	cr_assert(cfg.nics[0].has_mac);
	cr_assert_eq(cfg.nics[0].mac[5], 7);
	cr_assert_str_eq(cfg.nics[1].tap, "tap1");
	cr_assert(cfg.nics[1].random_mac);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_SYNC);
	cr_assert(cfg.cmdline_devices);
	cr_assert(cfg.no_host_quirks);
	cr_assert(cfg.no_seccomp);
	cr_assert_eq(cfg.timeout_ms, 30000);
	cr_assert_eq(cfg.stats, STATS_JSON);
	cr_assert_str_eq(cfg.run, in_dir("test.sh"));
	cr_assert_str_eq(cfg.user, "nobody");
	cr_assert_str_eq(cfg.api_sock, in_dir("vm.sock"));
	cr_assert_str_eq(cfg.config, path);
}

Test(config, only_kernel_gives_the_defaults)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\"}"), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, "/k");
	cr_assert_null(cfg.initrd);
	cr_assert_str_eq(cfg.cmdline, CFG_DEFAULT_CMDLINE);
	cr_assert_eq(cfg.mem, MV_MEM_DEFAULT);
	cr_assert_eq(cfg.cpus, 1);
	cr_assert_eq(cfg.nr_disks, 0);
	cr_assert_eq(cfg.nr_nics, 0);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_AUTO);
	cr_assert_eq(cfg.timeout_ms, 0);
	cr_assert_eq(cfg.stats, STATS_OFF);
	cr_assert_null(cfg.run);
	cr_assert_null(cfg.user);
}

Test(config, null_is_as_if_absent)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"initrd\": null, \"cmdline\": null, \"mem\": null, \"cpus\": null,"
			   " \"disks\": null, \"nets\": null, \"io_engine\": null, \"cmdline_devices\": null,"
			   " \"no_host_quirks\": null, \"no_seccomp\": null, \"timeout\": null, \"stats\": null, \"run\": null,"
			   " \"user\": null}"), 0, "%s", err_msg());
	cr_assert_null(cfg.initrd);
	cr_assert_str_eq(cfg.cmdline, CFG_DEFAULT_CMDLINE);
	cr_assert_eq(cfg.mem, MV_MEM_DEFAULT);
	cr_assert_eq(cfg.cpus, 1);
	/* A file without a kernel is fine when the command line has one. */
	cr_assert_eq(parse("{\"kernel\": null}", "--kernel", "k2"), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, "k2");
	cr_assert_eq(parse("{}", "--kernel=k3"), 0, "%s", err_msg());
	cr_assert_eq(parse("{}", "--host-info"), 0, "%s", err_msg());
}

Test(config, number_and_string_forms)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"mem\": 1073741824, \"timeout\": 0.5}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.mem, 1ULL << 30);
	cr_assert_eq(cfg.timeout_ms, 500);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"mem\": \"2GiB\", \"timeout\": \"2.25\"}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.mem, 2ULL << 30);
	cr_assert_eq(cfg.timeout_ms, 2250);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"timeout\": 31536000, \"cpus\": 64, \"stats\": \"text\","
			   " \"io_engine\": \"io_uring\"}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.timeout_ms, 31536000000ULL);
	cr_assert_eq(cfg.cpus, 64);
	cr_assert_eq(cfg.stats, STATS_TEXT);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_URING);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"stats\": \"off\", \"cmdline\": \"\"}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.stats, STATS_OFF);
	cr_assert_str_eq(cfg.cmdline, "");
	/* Object forms with every optional member left out. */
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [{\"path\": \"/d\"}], \"nets\": [{\"tap\": \"t\"}]}"), 0,
		     "%s", err_msg());
	cr_assert_str_eq(cfg.disks[0].path, "/d");
	cr_assert_str_eq(cfg.disks[0].id, "");
	cr_assert_not(cfg.nics[0].has_mac || cfg.nics[0].random_mac);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [{\"path\": \"/d\", \"ro\": true, \"id\": null}],"
			   " \"nets\": [{\"tap\": \"t\", \"mac\": null}], \"mem\": \"16M\"}"), 0, "%s", err_msg());
	cr_assert(cfg.disks[0].ro);
	cr_assert_eq(cfg.mem, 16ULL << 20);
	/* JSON escapes and UTF-8 reach the command line as they are. */
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"cmdline\": \"a=\\\"b c\\\" \\u00e9\\n\"}"), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.cmdline, "a=\"b c\" \xc3\xa9\n");
}

Test(config, command_line_overrides_scalars)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"initrd\": \"/i\", \"cmdline\": \"a\", \"mem\": \"1G\", \"cpus\": 4,"
			   " \"io_engine\": \"sync\", \"timeout\": 10, \"stats\": \"json\", \"run\": \"/r\", \"user\": \"u\"}",
			   "--kernel", "k2", "--initrd=i2", "--cmdline", "b", "--mem", "2G", "--cpus", "8",
			   "--io-engine", "uring", "--timeout", "3", "--stats=off", "--run", "r2", "--user", "v"),
		     0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, "k2");
	cr_assert_str_eq(cfg.initrd, "i2");
	cr_assert_str_eq(cfg.cmdline, "b");
	cr_assert_eq(cfg.mem, 2ULL << 30);
	cr_assert_eq(cfg.cpus, 8);
	cr_assert_eq(cfg.io_engine, IO_ENGINE_URING);
	cr_assert_eq(cfg.timeout_ms, 3000);
	cr_assert_eq(cfg.stats, STATS_OFF);
	cr_assert_str_eq(cfg.run, "r2");
	cr_assert_str_eq(cfg.user, "v");
}

Test(config, flags_before_config_still_override)
{
	char *argv[] = { "microvm", "--cpus", "3", "--stats", "--config", path, "--cmdline-devices", NULL };
	FILE *null = fopen("/dev/null", "w");

	const char *json = "{\"kernel\": \"/k\", \"cpus\": 2, \"stats\": \"json\"}";
	write_file(path, json, strlen(json));
	cr_assert_eq(cli_parse(7, argv, &cfg, null), 0, "%s", err_msg());
	fclose(null);
	cr_assert_eq(cfg.cpus, 3);
	cr_assert_eq(cfg.stats, STATS_TEXT);
	cr_assert(cfg.cmdline_devices);
	cr_assert_str_eq(cfg.kernel, "/k");
}

Test(config, command_line_disks_and_nets_come_after)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [\"/a\", \"/b\"], \"nets\": [\"tap=t0\"]}",
			   "--disk", "c", "--net", "tap=t1", "--disk=d,ro"),
		     0, "%s", err_msg());
	cr_assert_eq(cfg.nr_disks, 4);
	cr_assert_str_eq(cfg.disks[0].path, "/a");
	cr_assert_str_eq(cfg.disks[1].path, "/b");
	cr_assert_str_eq(cfg.disks[2].path, "c");   /* the command line's: relative to the working directory */
	cr_assert_str_eq(cfg.disks[3].path, "d");
	cr_assert(cfg.disks[3].ro);
	cr_assert_eq(cfg.nr_nics, 2);
	cr_assert_str_eq(cfg.nics[0].tap, "t0");
	cr_assert_str_eq(cfg.nics[1].tap, "t1");

	/* The limits and the duplicate checks count both. */
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"nets\": [\"tap=t0\"]}", "--net", "tap=t0"), -EINVAL);
	cr_assert_str_eq(err_msg(), "--net tap=t0: tap t0 is already used by an earlier --net");
	REFUSED("--disk /9: at most 8 disks",
		"{\"kernel\": \"/k\", \"disks\": [\"/1\",\"/2\",\"/3\",\"/4\",\"/5\",\"/6\",\"/7\",\"/8\",\"/9\"]}");
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [\"/1\",\"/2\",\"/3\",\"/4\",\"/5\",\"/6\",\"/7\",\"/8\"]}",
			   "--disk", "x"), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "at most 8 disks"), "%s", err_msg());
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [\"/1\",\"/2\",\"/3\",\"/4\",\"/5\",\"/6\",\"/7\",\"/8\"]}",
			   "--run", "s.sh"), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "needs a disk slot of its own"), "%s", err_msg());
	REFUSED("same MAC as --net tap=a",
		"{\"kernel\": \"/k\", \"nets\": [{\"tap\": \"a\", \"mac\": \"02:00:00:00:00:01\"},"
		" \"tap=b,mac=02:00:00:00:00:01\"]}");
}

Test(config, relative_paths_from_the_files_directory)
{
	cr_assert_eq(parse("{\"kernel\": \"k\", \"initrd\": \"../i\", \"run\": \"sub/t.sh\","
			   " \"disks\": [\"d.img,ro\", {\"path\": \"/abs.img\"}, {\"path\": \"x/e.img\"}]}"),
		     0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, in_dir("k"));
	cr_assert_str_eq(cfg.initrd, in_dir("../i"));
	cr_assert_str_eq(cfg.run, in_dir("sub/t.sh"));
	cr_assert_str_eq(cfg.disks[0].path, in_dir("d.img"));
	cr_assert_str_eq(cfg.disks[1].path, "/abs.img");
	cr_assert_str_eq(cfg.disks[2].path, in_dir("x/e.img"));

	/* A file named without a directory: paths stay relative to the working directory. */
	char cwd[4096];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	cr_assert_eq(chdir(dir), 0);
	char *argv[] = { "microvm", "--config", "vm.json", NULL };
	cr_assert_eq(cli_parse(3, argv, &cfg, stderr), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, "k");
	cr_assert_str_eq(cfg.disks[0].path, "d.img");
	cr_assert_eq(chdir(cwd), 0);

	/* In the root directory: one slash. */
	struct vmm_config *c = calloc(1, sizeof(*c));
	config_defaults(c);
	cr_assert_eq(config_file_parse("t", "/", "{\"kernel\": \"k\", \"disks\": [\"d\"]}", 31, c), 0, "%s", err_msg());
	cr_assert_str_eq(c->kernel, "/k");
	cr_assert_str_eq(c->disks[0].path, "/d");
	config_free(c);
	free(c);

	/* A relative disk path that only the directory makes too long. */
	char *long_dir = malloc(PATH_MAX), *json = malloc(PATH_MAX + 64);
	memset(long_dir, 'a', PATH_MAX - 10);
	long_dir[PATH_MAX - 10] = '\0';
	snprintf(json, PATH_MAX + 64, "{\"disks\": [\"0123456789\"]}");
	c = calloc(1, sizeof(*c));
	config_defaults(c);
	cr_assert_eq(config_file_parse("t", long_dir, json, strlen(json), c), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "t: disks[0]: path longer than"), "%s", err_msg());
	config_free(c);
	free(c);
	free(long_dir);
	free(json);

	/* Overlays: a file (relative to the directory too, in both forms) or throw-away. */
	cr_assert_eq(parse("{\"kernel\": \"k\", \"disks\": [\"b.img,overlay=o/a.ovl\","
			   " {\"path\": \"b.img\", \"overlay\": \"/abs.ovl\"}, {\"path\": \"b.img\", \"overlay\": true},"
			   " {\"path\": \"b.img\", \"overlay\": false}, {\"path\": \"b.img\", \"overlay\": \"c.ovl\"}]}"),
		     0, "%s", err_msg());
	cr_assert_eq(cfg.nr_disks, 5);
	cr_assert(cfg.disks[0].overlay);
	cr_assert_str_eq(cfg.disks[0].overlay_path, in_dir("o/a.ovl"));
	cr_assert_str_eq(cfg.disks[1].overlay_path, "/abs.ovl");
	cr_assert(cfg.disks[2].overlay);
	cr_assert_str_eq(cfg.disks[2].overlay_path, "");
	cr_assert_not(cfg.disks[3].overlay);
	cr_assert_str_eq(cfg.disks[4].overlay_path, in_dir("c.ovl"));
	cr_assert_str_eq(cfg.disks[4].path, in_dir("b.img"));
}

Test(config, not_json)
{
	REFUSED("vm.json:2:12: not valid JSON: unexpected character", "{\"kernel\": \"k\",\n  \"mem\": 5,}");
	REFUSED("vm.json:1:1: not valid JSON: unexpected end of data", "");
	REFUSED("vm.json:2:1: not valid JSON: unexpected end of data", "{\"kernel\": \"k\"\n");
	REFUSED("vm.json:1:", "{\"kernel\": \"k\"} {}");
	REFUSED("vm.json:1:2: not valid JSON", "{kernel: \"k\"}");
	REFUSED("vm.json:1:12: not valid JSON", "{\"kernel\": 'k'}");
	REFUSED("vm.json:1:1: not valid JSON", "kernel=k");
	REFUSED("vm.json:1:1: not valid JSON", "\xef\xbb\xbf{}");
	write_file(path, "{\"kernel\":\n \"k\0\"}", 17);
	REFUSED("vm.json:2:4: not valid JSON: a NUL byte", NULL);
	REFUSED("must be one JSON object ({\"kernel\": ...}), not an array", "[{\"kernel\": \"k\"}]");
	REFUSED("must be one JSON object ({\"kernel\": ...}), not a string", "\"k\"");
	REFUSED("must be one JSON object ({\"kernel\": ...}), not null", "null");
	REFUSED("must be one JSON object ({\"kernel\": ...}), not an integer", "1");
}

Test(config, files_that_cannot_be_read)
{
	char *argv[] = { "microvm", "--config", in_dir("missing.json"), NULL };
	cr_assert_eq(cli_parse(3, argv, &cfg, stderr), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "--config "), "%s", err_msg());
	cr_assert_not_null(strstr(err_msg(), "missing.json: No such file or directory"), "%s", err_msg());

	argv[2] = dir;
	cr_assert_eq(cli_parse(3, argv, &cfg, stderr), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), ": is a directory, not a JSON file"), "%s", err_msg());

	/* Over 1 MiB: refused before it is read (a regular file) ... */
	size_t big = CONFIG_MAX_SIZE + 1;
	char *data = malloc(big);
	memset(data, ' ', big);
	data[0] = '{', data[big - 1] = '}';
	write_file(path, data, big);
	REFUSED("vm.json: larger than 1048576 bytes (1048577)", NULL);
	/* ... exactly 1 MiB is still read. */
	data[1] = '{';
	write_file(path, data + 1, big - 1);
	cr_assert_eq(parse(NULL, "--kernel", "k"), 0, "%s", err_msg());
	free(data);

	/* ... and a pipe, which has no size, is cut at the limit. */
	int p[2];
	char fdpath[64];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		char buf[65536];
		memset(buf, ' ', sizeof(buf));
		close(p[0]);
		for (int i = 0; i < 17; i++)
			if (write(p[1], buf, sizeof(buf)) < 0)
				break;
		_exit(0);
	}
	close(p[1]);
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", p[0]);
	argv[2] = fdpath;
	cr_assert_eq(cli_parse(3, argv, &cfg, stderr), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), ": larger than 1048576 bytes"), "%s", err_msg());
	close(p[0]);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);

	/* Unreadable (root reads anything: then only check it is accepted). */
	write_file(path, "{\"kernel\": \"k\"}", 15);
	cr_assert_eq(chmod(path, 0), 0);
	int ret = parse(NULL);
	if (geteuid() == 0) {
		cr_assert_eq(ret, 0, "%s", err_msg());
	} else {
		cr_assert_eq(ret, -EINVAL);
		cr_assert_not_null(strstr(err_msg(), "vm.json: Permission denied"), "%s", err_msg());
	}
}

Test(config, unknown_keys)
{
	REFUSED("vm.json: unknown key 'kernal' (see docs/config.md)", "{\"kernal\": \"k\"}");
	REFUSED("vm.json: unknown key 'config'", "{\"kernel\": \"k\", \"config\": \"x.json\"}");
	REFUSED("vm.json: unknown key 'io-engine'", "{\"kernel\": \"k\", \"io-engine\": \"sync\"}");
	REFUSED("vm.json: unknown key 'verbose'", "{\"kernel\": \"k\", \"verbose\": true}");
	REFUSED("vm.json: disks[1]: unknown key 'readonly' (path, ro, direct, id, overlay, bw, iops)",
		"{\"kernel\": \"k\", \"disks\": [\"/a\", {\"path\": \"b\", \"readonly\": true}]}");
	REFUSED("vm.json: nets[0]: unknown key 'name' (tap, mac, rx_bw, rx_pps, tx_bw, tx_pps)", "{\"kernel\": \"k\", \"nets\": [{\"name\": \"t\"}]}");
}

Test(config, wrong_types)
{
	REFUSED("vm.json: kernel: must be a string, not an integer", "{\"kernel\": 3}");
	REFUSED("vm.json: initrd: must be a string, not a boolean", "{\"kernel\": \"k\", \"initrd\": false}");
	REFUSED("vm.json: cmdline: must be a string, not an array", "{\"kernel\": \"k\", \"cmdline\": [\"a\"]}");
	REFUSED("vm.json: mem: must be a number of bytes or a string like \"512M\", not a fractional number",
		"{\"kernel\": \"k\", \"mem\": 1.5}");
	REFUSED("vm.json: mem: must be a number of bytes", "{\"kernel\": \"k\", \"mem\": true}");
	REFUSED("vm.json: cpus: must be an integer, not a string", "{\"kernel\": \"k\", \"cpus\": \"2\"}");
	REFUSED("vm.json: cpus: must be an integer, not a fractional number", "{\"kernel\": \"k\", \"cpus\": 2.0}");
	REFUSED("vm.json: disks: must be an array, not a string", "{\"kernel\": \"k\", \"disks\": \"a.img\"}");
	REFUSED("vm.json: nets: must be an array, not an object", "{\"kernel\": \"k\", \"nets\": {\"tap\": \"t\"}}");
	REFUSED("vm.json: disks[0]: must be a string (\"PATH,ro,id=NAME\") or an object",
		"{\"kernel\": \"k\", \"disks\": [1]}");
	REFUSED("vm.json: nets[0]: must be a string (\"tap=NAME,mac=MAC\") or an object",
		"{\"kernel\": \"k\", \"nets\": [null]}");
	REFUSED("vm.json: disks[0].ro: must be true or false, not a string",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"ro\": \"yes\"}]}");
	REFUSED("vm.json: disks[0].direct: must be true or false, not an integer",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"direct\": 1}]}");
	REFUSED("vm.json: disks[0].overlay: must be true, false or a file name, not an integer",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"overlay\": 1}]}");
	REFUSED("vm.json: disks[0]: --disk a,ro,overlay: overlay and ro exclude each other",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"ro\": true, \"overlay\": true}]}");
	REFUSED("vm.json: disks[0].id: must be a string, not an integer",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"id\": 1}]}");
	REFUSED("vm.json: disks[0].path: must be a string, not an array",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": []}]}");
	REFUSED("vm.json: nets[0].mac: must be a string, not a boolean",
		"{\"kernel\": \"k\", \"nets\": [{\"tap\": \"t\", \"mac\": true}]}");
	REFUSED("vm.json: io_engine: must be a string, not an integer", "{\"kernel\": \"k\", \"io_engine\": 1}");
	REFUSED("vm.json: cmdline_devices: must be true or false, not a string",
		"{\"kernel\": \"k\", \"cmdline_devices\": \"true\"}");
	REFUSED("vm.json: no_host_quirks: must be true or false, not an integer",
		"{\"kernel\": \"k\", \"no_host_quirks\": 0}");
	REFUSED("vm.json: timeout: must be a number of seconds or a string like \"0.5\", not an object",
		"{\"kernel\": \"k\", \"timeout\": {}}");
	REFUSED("vm.json: stats: must be a string, not a boolean", "{\"kernel\": \"k\", \"stats\": true}");
	REFUSED("vm.json: run: must be a string, not an integer", "{\"kernel\": \"k\", \"run\": 1}");
	REFUSED("vm.json: user: must be a string, not an integer", "{\"kernel\": \"k\", \"user\": 0}");
	REFUSED("vm.json: cmdline: contains a NUL character (\\u0000)", "{\"kernel\": \"k\", \"cmdline\": \"a\\u0000b\"}");
	REFUSED("vm.json: disks[0]: contains a NUL character", "{\"kernel\": \"k\", \"disks\": [\"a\\u0000,ro\"]}");
}

/* The jail's and the cgroup's keys: absolute paths kept as given, the flag's string for cgroup. */
Test(config, jail_keys)
{
	cr_assert_eq(parse("{\"kernel\": \"k\", \"jail\": \"/srv/j\", \"netns\": \"/run/netns/t\","
			   " \"cgroup\": \"microvm/vm1,memory.max=300M,pids.max=64\"}"), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.jail, "/srv/j", "not made relative to the file's directory");
	cr_assert_str_eq(cfg.netns, "/run/netns/t");
	cr_assert(cfg.cgroup.set);
	cr_assert_str_eq(cfg.cgroup.path, "microvm/vm1");
	cr_assert_str_eq(cfg.cgroup.memory_max, "314572800");
	cr_assert_str_eq(cfg.cgroup.pids_max, "64");
	cr_assert_eq(parse("{\"kernel\": \"k\", \"cgroup\": \"a\"}", "--cgroup", "b,cpu.max=max"), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.cgroup.path, "b", "the flag replaces the file's value");
	cr_assert_str_eq(cfg.cgroup.cpu_max, "max 100000");
	REFUSED("vm.json: jail j: must be an absolute path", "{\"kernel\": \"k\", \"jail\": \"j\"}");
	REFUSED("vm.json: netns n: must be an absolute path", "{\"kernel\": \"k\", \"netns\": \"n\"}");
	REFUSED("vm.json: jail: must be a string, not an integer", "{\"kernel\": \"k\", \"jail\": 1}");
	REFUSED("vm.json: cgroup g,memory.max=1: memory.max=1: must be a size",
		"{\"kernel\": \"k\", \"cgroup\": \"g,memory.max=1\"}");
}

/* The values themselves: the command line's checks and messages, after the file and key. */
Test(config, bad_values)
{
	REFUSED("vm.json: mem 5: must be a whole number of MiB between 16 MiB and 1024 GiB",
		"{\"kernel\": \"k\", \"mem\": 5}");
	REFUSED("vm.json: mem 1025K: must be a whole number of MiB", "{\"kernel\": \"k\", \"mem\": \"1025K\"}");
	REFUSED("vm.json: mem -1: not a size", "{\"kernel\": \"k\", \"mem\": -1}");
	REFUSED("vm.json: mem lots: not a size", "{\"kernel\": \"k\", \"mem\": \"lots\"}");
	REFUSED("vm.json: mem 18446744073709551615: must be", "{\"kernel\": \"k\", \"mem\": 18446744073709551615}");
	REFUSED("vm.json: cpus 0: must be a number from 1 to 64", "{\"kernel\": \"k\", \"cpus\": 0}");
	REFUSED("vm.json: cpus 65: must be", "{\"kernel\": \"k\", \"cpus\": 65}");
	REFUSED("vm.json: cpus -2: must be", "{\"kernel\": \"k\", \"cpus\": -2}");
	REFUSED("vm.json: cpus 9223372036854775807: must be", "{\"kernel\": \"k\", \"cpus\": 9223372036854775807}");
	REFUSED("vm.json: io_engine fast: must be auto, uring or sync", "{\"kernel\": \"k\", \"io_engine\": \"fast\"}");
	REFUSED("vm.json: timeout 0: must be a positive number of seconds", "{\"kernel\": \"k\", \"timeout\": 0}");
	REFUSED("vm.json: timeout -1: must be", "{\"kernel\": \"k\", \"timeout\": -1}");
	REFUSED("vm.json: timeout 1e3: must be", "{\"kernel\": \"k\", \"timeout\": 1e3}");
	REFUSED("vm.json: timeout 31536001: must be", "{\"kernel\": \"k\", \"timeout\": 31536001}");
	REFUSED("vm.json: stats=xml: the format must be text or json", "{\"kernel\": \"k\", \"stats\": \"xml\"}");
	REFUSED("vm.json: kernel: empty path", "{\"kernel\": \"\"}");
	REFUSED("vm.json: initrd: empty path", "{\"kernel\": \"k\", \"initrd\": \"\"}");
	REFUSED("vm.json: run: empty path", "{\"kernel\": \"k\", \"run\": \"\"}");
	REFUSED("vm.json: user: empty user", "{\"kernel\": \"k\", \"user\": \"\"}");
	REFUSED("vm.json: disks[0]: --disk a.img,rw: unknown option 'rw'", "{\"kernel\": \"k\", \"disks\": [\"a.img,rw\"]}");
	REFUSED("vm.json: disks[0]: --disk : empty path", "{\"kernel\": \"k\", \"disks\": [\"\"]}");
	REFUSED("vm.json: disks[0].path: empty path", "{\"kernel\": \"k\", \"disks\": [{\"path\": \"\", \"ro\": true}]}");
	REFUSED("vm.json: disks[0]: --disk a,id=123456789012345678901: id must be 1 to 20 characters",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"id\": \"123456789012345678901\"}]}");
	REFUSED("vm.json: disks[0]: --disk a,id=: id must be 1 to 20",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"id\": \"\"}]}");
	REFUSED("vm.json: disks[0]: --disk a,id=a b: id must be printable ASCII",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"id\": \"a b\"}]}");
	REFUSED("vm.json: disks[0]: missing \"path\"", "{\"kernel\": \"k\", \"disks\": [{\"ro\": true}]}");
	REFUSED("vm.json: disks[0].path: no ',' allowed", "{\"kernel\": \"k\", \"disks\": [{\"path\": \"a,ro\"}]}");
	REFUSED("vm.json: disks[0].id: no ',' allowed",
		"{\"kernel\": \"k\", \"disks\": [{\"path\": \"a\", \"id\": \"x,ro\"}]}");
	REFUSED("vm.json: nets[0]: missing \"tap\"", "{\"kernel\": \"k\", \"nets\": [{\"mac\": \"random\"}]}");
	REFUSED("vm.json: nets[0].tap: no ',' allowed",
		"{\"kernel\": \"k\", \"nets\": [{\"tap\": \"t,mac=random\"}]}");
	REFUSED("vm.json: nets[0]: --net tap=: empty tap name", "{\"kernel\": \"k\", \"nets\": [{\"tap\": \"\"}]}");
	REFUSED("vm.json: nets[0]: --net tap=t,mac=01:00:00:00:00:01: MAC 01:00:00:00:00:01 is a multicast",
		"{\"kernel\": \"k\", \"nets\": [{\"tap\": \"t\", \"mac\": \"01:00:00:00:00:01\"}]}");
	REFUSED("vm.json: nets[0]: --net eth0: unknown option", "{\"kernel\": \"k\", \"nets\": [\"eth0\"]}");
	REFUSED("vm.json: nets[0]: --net tap=much-too-long-name: tap name longer than 15",
		"{\"kernel\": \"k\", \"nets\": [{\"tap\": \"much-too-long-name\"}]}");

	/* A long disk string is refused, not cut. */
	char *json = malloc(3 * PATH_MAX);
	int n = snprintf(json, 3 * PATH_MAX, "{\"kernel\": \"k\", \"disks\": [\"");
	memset(json + n, 'a', 2 * PATH_MAX + 100);
	strcpy(json + n + 2 * PATH_MAX + 100, "\"]}");
	REFUSED("vm.json: disks[0]: too long", json);
	free(json);
}

Test(config, the_command_line_around_it)
{
	/* Without a kernel anywhere: the command line's message. */
	cr_assert_eq(parse("{\"cpus\": 2}"), -EINVAL);
	cr_assert_str_eq(err_msg(), "--kernel is required (see microvm --help)");
	/* One file only. */
	cr_assert_eq(parse("{\"kernel\": \"k\"}", "--config", "other.json"), -EINVAL);
	cr_assert_not_null(strstr(err_msg(), "--config other.json: only one --config"), "%s", err_msg());
	char *argv[] = { "microvm", "--config=", NULL, NULL };
	cr_assert_eq(cli_parse(2, argv, &cfg, stderr), -EINVAL);
	cr_assert_str_eq(err_msg(), "--config: empty path");
	argv[0] = "microvm", argv[1] = "--config";
	cr_assert_eq(cli_parse(2, argv, &cfg, stderr), -EINVAL);
	cr_assert_str_eq(err_msg(), "--config needs a value (see microvm --help)");
	/* --config=FILE works like --config FILE. */
	char eq[160];
	snprintf(eq, sizeof(eq), "--config=%s", path);
	write_file(path, "{\"kernel\": \"/k\"}", 16);
	argv[1] = eq;
	cr_assert_eq(cli_parse(2, argv, &cfg, stderr), 0, "%s", err_msg());
	cr_assert_str_eq(cfg.kernel, "/k");
	/* --help and --version win over a bad file, as over a bad flag. */
	cr_assert_eq(parse("not json", "--help"), 1);
	cr_assert_eq(parse("not json", "-V"), 1);
	/* A bad flag after a good file is still the flag's error. */
	cr_assert_eq(parse("{\"kernel\": \"k\"}", "--cpus", "0"), -EINVAL);
	cr_assert_str_eq(err_msg(), "--cpus 0: must be a number from 1 to 64");
	cr_assert_eq(parse("{\"kernel\": \"k\"}", "--bogus"), -EINVAL);
	cr_assert_str_eq(err_msg(), "unknown option '--bogus' (see microvm --help)");
}

/* Every string the file gave is owned by cfg and lives until config_free(), after the JSON is gone. */
Test(config, strings_outlive_the_parse)
{
	struct vmm_config *c = calloc(1, sizeof(*c));
	char *json = strdup("{\"kernel\": \"/k\", \"cmdline\": \"x y\", \"initrd\": \"/i\", \"run\": \"/r\", \"user\": \"u\"}");

	config_defaults(c);
	cr_assert_eq(config_file_parse("t", "", json, strlen(json), c), 0, "%s", err_msg());
	memset(json, 'z', strlen(json));
	free(json);
	cr_assert_str_eq(c->kernel, "/k");
	cr_assert_str_eq(c->cmdline, "x y");
	cr_assert_str_eq(c->initrd, "/i");
	cr_assert_str_eq(c->run, "/r");
	cr_assert_str_eq(c->user, "u");
	cr_assert_eq(c->nr_owned, 5);
	config_free(c);
	cr_assert_eq(c->nr_owned, 0);
	config_free(c);   /* twice is harmless */
	free(c);
}

Test(config, rate_limits)
{
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [{\"path\": \"/d\", \"bw\": \"10M+5M\", \"iops\": 300}],"
			   " \"nets\": [{\"tap\": \"t\", \"rx_bw\": 1000000, \"tx_pps\": \"100/10\"}]}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.disks[0].limit.bytes.size, 10ULL << 20);
	cr_assert_eq(cfg.disks[0].limit.bytes.burst, 5ULL << 20);
	cr_assert_eq(cfg.disks[0].limit.ops.size, 300);
	cr_assert_eq(cfg.disks[0].limit.ops.refill_ms, 1000);
	cr_assert_eq(cfg.nics[0].rx.bytes.size, 1000000);
	cr_assert_eq(cfg.nics[0].tx.ops.size, 100);
	cr_assert_eq(cfg.nics[0].tx.ops.refill_ms, 10);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [\"/d,bw=1M\"]}"), 0, "%s", err_msg());
	cr_assert_eq(cfg.disks[0].limit.bytes.size, 1ULL << 20);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [{\"path\": \"/d\", \"iops\": -1}]}"), -EINVAL);
	cr_assert(strstr(err_msg(), "disks[0].iops: must be a limit"), "%s", err_msg());
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"disks\": [{\"path\": \"/d\", \"iops\": true}]}"), -EINVAL);
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"nets\": [{\"tap\": \"t\", \"tx_bw\": \"lots\"}]}"), -EINVAL);
	cr_assert(strstr(err_msg(), "bad tx_bw= 'lots'"), "%s", err_msg());
	cr_assert_eq(parse("{\"kernel\": \"/k\", \"nets\": [{\"tap\": \"t\", \"tx_bandwidth\": 1}]}"), -EINVAL);
	cr_assert(strstr(err_msg(), "rx_bw, rx_pps, tx_bw, tx_pps"), "%s", err_msg());
}
