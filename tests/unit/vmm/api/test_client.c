/* test_client.c - microvm --shutdown SOCKET (vmm/api/client.c) against a real API server that plays the VM. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "vmm/api/client.h"
#include "vmm/api/http.h"
#include "vmm/stats.h"

/* The fake VM: answers POST /vm/shutdown with `status`, then "powers off" (closes its socket) after exit_ms. */
static struct {
	struct api_server srv;
	char path[108];
	int status;
	int64_t exit_ms;               /* -1: never */
	char body[256];                /* the request body it got */
	atomic_bool stop;
	uint64_t pressed_ns;
	pthread_t thread;
} vm;

static void handler(void *ctx, const struct api_request *req, struct api_response *resp)
{
	(void)ctx;
	snprintf(vm.body, sizeof(vm.body), "%s %s %s", req->method, req->path, req->body);
	resp->status = vm.status;
	resp->body = vm.status == 202 ? strdup("{\"state\":\"shutting-down\"}")
				      : api_error_body("the VM is paused: resume it first");
	if (vm.status == 202)
		vm.pressed_ns = stats_now_ns();
}

static void *serve(void *arg)
{
	(void)arg;
	while (!atomic_load(&vm.stop)) {
		struct pollfd p[1 + API_MAX_CLIENTS];
		int n = api_pollfds(&vm.srv, p, 1 + API_MAX_CLIENTS);
		if (n == 0)
			break;
		poll(p, (nfds_t)n, 10);
		api_process(&vm.srv, p, n, stats_now_ns());
		if (vm.pressed_ns && vm.exit_ms >= 0 && stats_now_ns() - vm.pressed_ns >= (uint64_t)vm.exit_ms * 1000000)
			break;
	}
	api_close(&vm.srv); /* the VM exits: its socket is removed */
	return NULL;
}

static void start_vm(int status, int64_t exit_ms)
{
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.path, sizeof(vm.path), "/tmp/microvm-client-test-%d.sock", (int)getpid());
	vm.status = status;
	vm.exit_ms = exit_ms;
	cr_assert_eq(api_open(&vm.srv, vm.path, handler, NULL), 0, "%s", err_msg());
	cr_assert_eq(pthread_create(&vm.thread, NULL, serve, NULL), 0);
}

static void end_vm(void)
{
	atomic_store(&vm.stop, true);
	pthread_join(vm.thread, NULL);
	unlink(vm.path);
}

Test(client, the_vm_powers_off)
{
	start_vm(202, 300);
	uint64_t t0 = stats_now_ns();
	int r = api_client_shutdown(vm.path, 5000);
	uint64_t ms = (stats_now_ns() - t0) / 1000000;
	cr_assert_eq(r, 0, "%s", err_msg());
	cr_assert(ms >= 250 && ms < 3000, "returned %llu ms after the press, want about 300", (unsigned long long)ms);
	/* microvm's own deadline is 10 s past the client's, so it never comes first. */
	cr_assert_str_eq(vm.body, "POST /vm/shutdown {\"timeout\": 15.000}");
	end_vm();
}

Test(client, the_vm_ignores_the_button)
{
	start_vm(202, -1);
	uint64_t t0 = stats_now_ns();
	int r = api_client_shutdown(vm.path, 500);
	uint64_t ms = (stats_now_ns() - t0) / 1000000;
	cr_assert_eq(r, -ETIMEDOUT);
	cr_assert(ms >= 500 && ms < 3000, "gave up after %llu ms, want 500", (unsigned long long)ms);
	cr_assert(strstr(err_msg(), "did not power off within 0.500 s"), "%s", err_msg());
	end_vm();
}

Test(client, the_vm_refuses)
{
	start_vm(409, -1);
	int r = api_client_shutdown(vm.path, 5000);
	cr_assert_eq(r, -EBUSY);
	cr_assert(strstr(err_msg(), ": the VM refused (409): the VM is paused: resume it first"), "%s", err_msg());
	end_vm();
}

Test(client, no_vm_there)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/microvm-client-none-%d.sock", (int)getpid());
	cr_assert_eq(api_client_shutdown(path, 1000), -ENOENT);
	cr_assert(strstr(err_msg(), "No such file or directory (no microvm serves its API there)"), "%s", err_msg());
}

Test(client, the_deadline_is_capped)
{
	start_vm(202, 50);
	cr_assert_eq(api_client_shutdown(vm.path, 3600000), 0, "%s", err_msg());
	cr_assert_str_eq(vm.body, "POST /vm/shutdown {\"timeout\": 3600.000}", "at most the API's 3600 s");
	end_vm();
}
