/* test_control.c - the control API's routes on a VM without vCPUs or KVM: dispatch, the pause state machine, the shutdown and snapshot bodies. */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/api/control.h"
#include "base/exit_codes.h"
#include "vmm/vm.h"

static struct vmm vmm; /* large: not on the stack */
static struct control ctl = { .vmm = &vmm };

static void setup(void)
{
	memset(&vmm, 0, sizeof(vmm));
	config_defaults(&vmm.cfg);
	vmm.cfg.kernel = "bzImage";
	vmm.vm.fd = -1;       /* no KVM: pulsing a line fails */
	vmm.stop_efd = -1;
	pthread_mutex_init(&vmm.run_lock, NULL);
	pthread_cond_init(&vmm.run_cond, NULL);
	vmm.run_sync_ready = true;
}

static void teardown(void)
{
	pthread_cond_destroy(&vmm.run_cond);
	pthread_mutex_destroy(&vmm.run_lock);
}

TestSuite(control, .init = setup, .fini = teardown);

/* Call a route; returns the status and the parsed body (NULL if none). */
static int call(const char *method, const char *path, const char *body, json_object **out, const char **allow)
{
	struct api_request req = { .method = method, .path = path, .body = body ? body : "",
				   .body_len = body ? strlen(body) : 0 };
	struct api_response resp = { .status = 0 };

	control_handle(&ctl, &req, &resp);
	*out = resp.body ? json_tokener_parse(resp.body) : NULL;
	cr_assert(!resp.body || *out, "not JSON: %s", resp.body);
	if (allow)
		*allow = resp.allow;
	free(resp.body);
	return resp.status;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	cr_assert(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

Test(control, unknown_route_and_wrong_method)
{
	json_object *o;
	const char *allow = NULL;

	cr_assert_eq(call("GET", "/nope", NULL, &o, NULL), 404);
	cr_assert(strstr(str(o, "error"), "/nope: no such route"));
	json_object_put(o);
	cr_assert_eq(call("DELETE", "/vm", NULL, &o, &allow), 405);
	cr_assert_str_eq(allow, "GET");
	json_object_put(o);
	cr_assert_eq(call("GET", "/vm/pause", NULL, &o, &allow), 405);
	cr_assert_str_eq(allow, "POST");
	json_object_put(o);
}

Test(control, info_has_state_and_configuration)
{
	json_object *o, *cfg, *v;

	cr_assert_eq(call("GET", "/vm", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "running");
	cr_assert_str_eq(str(o, "version"), MICROVM_VERSION);
	cr_assert(json_object_object_get_ex(o, "config", &cfg));
	cr_assert_str_eq(str(cfg, "kernel"), "bzImage");
	cr_assert(json_object_object_get_ex(cfg, "cpus", &v) && json_object_get_int(v) == 1);
	cr_assert(json_object_object_get_ex(cfg, "disks", &v) && json_object_array_length(v) == 0);
	json_object_put(o);
	cr_assert_eq(call("GET", "/metrics", NULL, &o, NULL), 200);
	cr_assert(json_object_object_get_ex(o, "vm_exits_total", &v) && json_object_get_int64(v) == 0);
	cr_assert(json_object_object_get_ex(o, "vm_exits", &v) && json_object_object_get_ex(v, "mmio", NULL));
	json_object_put(o);
}

Test(control, pause_resume_state_machine)
{
	json_object *o;

	cr_assert_eq(call("POST", "/vm/pause", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "paused");
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/pause", NULL, &o, NULL), 200, "pause twice: still paused");
	json_object_put(o);
	cr_assert_eq(call("GET", "/vm", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "paused");
	json_object_put(o);
	/* A paused guest cannot see its power button. */
	cr_assert_eq(call("POST", "/vm/shutdown", NULL, &o, NULL), 409);
	cr_assert(strstr(str(o, "error"), "paused"));
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/resume", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "running");
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/resume", NULL, &o, NULL), 200, "resume twice: still running");
	json_object_put(o);
}

Test(control, shutdown_body_is_checked_before_anything_happens)
{
	static const char *const bad[] = {
		"x", "[]", "{\"timeout\": 0}", "{\"timeout\": -2}", "{\"timeout\": 3601}", "{\"timeout\": \"5\"}",
		"{\"timeout\": true}", "{\"other\": 1}", "{\"timeout\": 5} trailing", "{\"timeout\": 5",
	};
	json_object *o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(call("POST", "/vm/shutdown", bad[i], &o, NULL), 400, "body %s", bad[i]);
		cr_assert(strstr(str(o, "error"), "POST /vm/shutdown: "), "%s", str(o, "error"));
		json_object_put(o);
	}
	cr_assert_eq(vmm.shutdown_deadline, 0, "nothing was armed");
	/* A good body reaches the VM, which has no KVM here: the line cannot be pulsed. */
	cr_assert_eq(call("POST", "/vm/shutdown", "{\"timeout\": 2.5}\n", &o, NULL), 500);
	json_object_put(o);
	cr_assert_eq(vmm.shutdown_deadline, 0);
}

Test(control, stop_then_everything_conflicts)
{
	json_object *o;

	cr_assert_eq(call("POST", "/vm/stop", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "stopping");
	json_object_put(o);
	cr_assert_eq(vmm.exit_status, MV_EXIT_POWEROFF);
	cr_assert_eq(call("POST", "/vm/pause", NULL, &o, NULL), 409);
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/resume", NULL, &o, NULL), 409);
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/shutdown", NULL, &o, NULL), 409);
	json_object_put(o);
	cr_assert_eq(call("GET", "/vm", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "stopping");
	json_object_put(o);
}

Test(control, snapshot_body_and_state)
{
	static const char *const bad[] = {
		"", "x", "[]", "{}", "{\"path\": 3}", "{\"path\": \"\"}", "{\"path\": \"/s\", \"compress\": 1}",
		"{\"path\": \"/s\", \"other\": true}", "{\"path\": \"/s\"} trailing", "{\"compress\": true}",
	};
	json_object *o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(call("POST", "/vm/snapshot", bad[i], &o, NULL), 400, "body '%s'", bad[i]);
		cr_assert(strstr(str(o, "error"), "POST /vm/snapshot: "), "%s", str(o, "error"));
		json_object_put(o);
	}
	/* A good body on a running VM: pause first. */
	cr_assert_eq(call("POST", "/vm/snapshot", "{\"path\": \"/nonexistent/snap\"}", &o, NULL), 409);
	cr_assert(strstr(str(o, "error"), "pause it first"), "%s", str(o, "error"));
	json_object_put(o);
	/* Paused, with a directory that cannot be made: 500 naming it, and the VM stays paused. */
	cr_assert_eq(call("POST", "/vm/pause", NULL, &o, NULL), 200);
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/snapshot", "{\"path\": \"/nonexistent/snap\", \"compress\": true}", &o, NULL),
		     500);
	cr_assert(strstr(str(o, "error"), "/nonexistent/snap"), "%s", str(o, "error"));
	json_object_put(o);
	cr_assert_eq(call("GET", "/vm", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "state"), "paused");
	json_object_put(o);
}

/* ---- GET/PATCH /vm/disks/ID and /vm/nets/ID: rate limits on real devices (an I/O loop not started) ---- */

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	cr_assert(json_object_object_get_ex(o, key, &v), "no '%s' in %s", key, json_object_to_json_string(o));
	return v;
}

static uint64_t u64(json_object *o, const char *key)
{
	return (uint64_t)json_object_get_int64(member(o, key));
}

Test(control, device_limits)
{
	struct io_loop *loop;
	char tmpl[] = "/tmp/microvm-ctl-XXXXXX";
	int fd = mkstemp(tmpl), sv[2];
	json_object *o;
	const char *allow = NULL;

	cr_assert_geq(fd, 0);
	unlink(tmpl);
	cr_assert_eq(ftruncate(fd, 1 << 20), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(io_loop_create(&loop, IO_ENGINE_SYNC), 0);
	struct blk_disk bd = { .sectors = 2048, .id = "d" };
	int file = io_loop_register_file(loop, fd);
	cr_assert_eq(blk_create(&vmm.vdevs.disks[0].blk, &bd, &(struct disk_backend){ .loop = loop, .file = file }), 0);
	vmm.vdevs.disks[0].cfg = &vmm.cfg.disks[0];
	vmm.cfg.nr_disks = vmm.vdevs.nr_disks = 1;
	struct net_backend be = { .fd = sv[0], .name = "t" };
	cr_assert_eq(net_create(&vmm.vdevs.nics[0].net, &be, loop), 0);
	vmm.vdevs.nics[0].cfg = &vmm.cfg.nics[0];
	vmm.cfg.nr_nics = vmm.vdevs.nr_nics = 1;

	cr_assert_eq(call("GET", "/vm/disks/vda", NULL, &o, NULL), 200);
	cr_assert_str_eq(str(o, "name"), "vda");
	cr_assert(json_object_is_type(member(o, "bw"), json_type_null), "no limit by default");
	json_object_put(o);

	cr_assert_eq(call("PATCH", "/vm/disks/vda", "{\"bw\": \"10M+1M\", \"iops\": 500}", &o, NULL), 200);
	json_object *bw = member(o, "bw"), *iops = member(o, "iops");
	cr_assert_eq(u64(bw, "size"), 10 << 20);
	cr_assert_eq(u64(bw, "refill_ms"), 1000);
	cr_assert_eq(u64(bw, "burst"), 1 << 20);
	cr_assert_eq(u64(bw, "level"), 10 << 20, "a new limit starts full");
	cr_assert_str_eq(str(bw, "limit"), "10485760/1000+1048576");
	cr_assert_eq(u64(iops, "size"), 500);
	json_object_put(o);
	cr_assert_eq(vmm.cfg.disks[0].limit.ops.size, 500);
	cr_assert_eq(call("GET", "/vm", NULL, &o, NULL), 200);
	json_object *d0 = json_object_array_get_idx(member(member(o, "config"), "disks"), 0);
	cr_assert_str_eq(str(d0, "bw"), "10485760/1000+1048576", "GET /vm shows the new limits too");
	cr_assert_str_eq(str(d0, "iops"), "500/1000");
	json_object *n0 = json_object_array_get_idx(member(member(o, "config"), "nets"), 0);
	cr_assert(json_object_is_type(member(n0, "tx_bw"), json_type_null));
	json_object_put(o);

	/* Only the keys given change; null lifts a limit. */
	cr_assert_eq(call("PATCH", "/vm/disks/vda", "{\"iops\": null}", &o, NULL), 200);
	cr_assert(json_object_is_type(member(o, "iops"), json_type_null));
	cr_assert_eq(u64(member(o, "bw"), "size"), 10 << 20);
	json_object_put(o);

	/* Bad bodies change nothing. */
	static const char *const bad[][2] = {
		{ "{\"bw\": \"fast\"}", "bad limit 'fast'" },
		{ "{\"bw\": -5}", "must be 0 to" },
		{ "{\"iops\": \"1K\"}", "plain numbers" },
		{ "{\"bw\": true}", "bad limit 'true'" },
		{ "{\"rx_bw\": 1}", "unknown key \"rx_bw\" (use bw, iops)" },
		{ "[1]", "the body must be a JSON object" },
		{ "{\"bw\": \"1M\", \"iops\": \"x\"}", "\"iops\": bad limit" },
		{ "{\"bw\": \"1M\\u0000junk\"}", "\"bw\": bad limit" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(call("PATCH", "/vm/disks/vda", bad[i][0], &o, NULL), 400, "%s", bad[i][0]);
		cr_assert(strstr(str(o, "error"), bad[i][1]), "%s: %s", bad[i][0], str(o, "error"));
		json_object_put(o);
	}
	cr_assert_eq(vmm.cfg.disks[0].limit.bytes.size, 10 << 20);
	cr_assert_eq(vmm.cfg.disks[0].limit.ops.size, 0);

	cr_assert_eq(call("PATCH", "/vm/nets/eth0", "{\"tx_bw\": \"1M/100\", \"rx_pps\": 1000}", &o, NULL), 200);
	cr_assert_eq(u64(member(o, "tx_bw"), "refill_ms"), 100);
	cr_assert_eq(u64(member(o, "rx_pps"), "size"), 1000);
	cr_assert(json_object_is_type(member(o, "tx_pps"), json_type_null));
	cr_assert_eq(u64(o, "rx_throttled"), 0);
	json_object_put(o);

	cr_assert_eq(call("GET", "/metrics", NULL, &o, NULL), 200);
	json_object *devs = member(o, "devices");
	cr_assert_eq(u64(member(member(member(devs, "vda"), "limits"), "bw"), "size"), 10 << 20);
	cr_assert_eq(u64(member(member(member(devs, "eth0"), "limits"), "rx_pps"), "size"), 1000);
	json_object_put(o);

	cr_assert_eq(call("GET", "/vm/disks/vdb", NULL, &o, NULL), 404);
	cr_assert(strstr(str(o, "error"), "no such disk"));
	json_object_put(o);
	cr_assert_eq(call("PATCH", "/vm/nets/eth1", "{}", &o, NULL), 404);
	json_object_put(o);
	cr_assert_eq(call("POST", "/vm/disks/vda", "{}", &o, &allow), 405);
	cr_assert_str_eq(allow, "GET, PATCH");
	json_object_put(o);

	io_loop_destroy(loop);
	blk_destroy(vmm.vdevs.disks[0].blk);
	net_destroy(vmm.vdevs.nics[0].net);
	close(fd);
	close(sv[0]);
	close(sv[1]);
}
