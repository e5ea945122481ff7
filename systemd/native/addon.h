// Shared by the addon's source files: error and argument helpers (portail_systemd.c).
#pragma once
#include <node_api.h>
#include <stdint.h>

// Throws an Error with code ("ENOENT"), errno (negative) and syscall; returns NULL.
napi_value throw_errno(napi_env env, int err, const char *syscall);
// Throws a TypeError; returns NULL.
napi_value throw_type(napi_env env, const char *text);
// Reads an integer-valued number; 0 on success, else has thrown.
int get_int(napi_env env, napi_value v, const char *what, int64_t *out);

// sock_diag.c
napi_value SockDiagOwner(napi_env env, napi_callback_info info);
// Per-environment state of sock_diag.c (a reused netlink socket), freed with the env.
void *sock_diag_state_new(void);
void sock_diag_state_free(napi_env env, void *data, void *hint);
