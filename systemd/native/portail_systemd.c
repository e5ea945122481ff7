// portail's systemd addon: the few socket calls Node lacks (sendmsg with SCM_RIGHTS on
// unix datagram sockets, SO_PEERCRED, socket introspection, FD_CLOEXEC, sealed memfds),
// plus two receive helpers used by the tests, and the owner of a TCP socket by its
// 4-tuple through NETLINK_SOCK_DIAG (sock_diag.c). Plain node_api.h, libc only, Linux only.
// Every failing system call throws an Error carrying code ("ENOENT"), errno (negative,
// as Node's own errors) and syscall, so callers can branch like on fs/net errors.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addon.h"

// The kernel refuses more than SCM_MAX_FD (253) descriptors in one message.
#define MAX_FDS 253
#define DEFAULT_TIMEOUT_MS 1000
// Receive buffer of the test receiver: large enough for any datagram we send (an entry
// above the default send buffer, ~208 KiB, goes through a memfd anyway).
#define RCVBUF_WANTED (8 * 1024 * 1024)

#define CHECK(call)                                                                         \
  do {                                                                                      \
    if ((call) != napi_ok) return NULL;                                                     \
  } while (0)

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name) return name;
#endif
  switch (err) {
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case EMSGSIZE: return "EMSGSIZE";
    case ENOBUFS: return "ENOBUFS";
    case ENOTSOCK: return "ENOTSOCK";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "EUNKNOWN";
  }
}

napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char text[256];
  snprintf(text, sizeof text, "%s %s: %s", syscall, errno_name(err), strerror(err));
  napi_value msg, error, code, num, sys;
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg));
  CHECK(napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code));
  CHECK(napi_create_error(env, code, msg, &error));
  CHECK(napi_set_named_property(env, error, "code", code));
  CHECK(napi_create_int32(env, -err, &num));
  CHECK(napi_set_named_property(env, error, "errno", num));
  CHECK(napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys));
  CHECK(napi_set_named_property(env, error, "syscall", sys));
  napi_throw(env, error);
  return NULL;
}

napi_value throw_type(napi_env env, const char *text) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", text);
  return NULL;
}

// ---- argument helpers (each returns 0 on success, else has thrown) ----

int get_int(napi_env env, napi_value v, const char *what, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    char text[128];
    snprintf(text, sizeof text, "%s must be a number", what);
    throw_type(env, text);
    return -1;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (d != (double)(int64_t)d) {
    char text[128];
    snprintf(text, sizeof text, "%s must be an integer", what);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", text);
    return -1;
  }
  *out = (int64_t)d;
  return 0;
}

static int get_fd(napi_env env, napi_value v, int *out) {
  int64_t n;
  if (get_int(env, v, "fd", &n)) return -1;
  if (n < 0 || n > INT32_MAX) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "fd must be a non-negative integer");
    return -1;
  }
  *out = (int)n;
  return 0;
}

// Fills a sockaddr_un from "/path" or "@abstract"; returns the address length or -1.
static int get_unix_address(napi_env env, napi_value v, struct sockaddr_un *sa, socklen_t *len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    throw_type(env, "socket path must be a string");
    return -1;
  }
  char path[sizeof sa->sun_path + 2];
  size_t n;
  napi_get_value_string_utf8(env, v, path, sizeof path, &n);
  if (n == 0 || n > sizeof sa->sun_path - (path[0] == '@' ? 0 : 1) || strlen(path) != n) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE",
                           "socket path must be 1..107 bytes, without NUL (\"@name\" = abstract)");
    return -1;
  }
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  memcpy(sa->sun_path, path, n);
  if (path[0] == '@') {
    sa->sun_path[0] = '\0';  // abstract namespace: no trailing NUL, length is exact
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  } else {
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  }
  return 0;
}

// Accepts a Buffer/TypedArray (bytes as is) or a string (UTF-8). *owned is set when the
// bytes were copied and must be freed.
static int get_bytes(napi_env env, napi_value v, char **data, size_t *len, int *owned) {
  bool is;
  *owned = 0;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    void *p;
    napi_get_buffer_info(env, v, &p, len);
    *data = p;
    return 0;
  }
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type tt;
    size_t count, offset;
    void *p;
    napi_value ab;
    napi_get_typedarray_info(env, v, &tt, &count, &p, &ab, &offset);
    if (tt != napi_uint8_array) {
      throw_type(env, "data must be a Buffer, a Uint8Array or a string");
      return -1;
    }
    *data = p;
    *len = count;
    return 0;
  }
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && t == napi_string) {
    size_t n;
    napi_get_value_string_utf8(env, v, NULL, 0, &n);
    char *buf = malloc(n + 1);
    if (!buf) {
      napi_throw_error(env, "ENOMEM", "out of memory");
      return -1;
    }
    napi_get_value_string_utf8(env, v, buf, n + 1, &n);
    *data = buf;
    *len = n;
    *owned = 1;
    return 0;
  }
  throw_type(env, "data must be a Buffer, a Uint8Array or a string");
  return -1;
}

// Optional array of fds (undefined/null = none).
static int get_fd_array(napi_env env, napi_value v, int *fds, size_t *count) {
  *count = 0;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null) return 0;
  bool is;
  if (napi_is_array(env, v, &is) != napi_ok || !is) {
    throw_type(env, "fds must be an array of numbers");
    return -1;
  }
  uint32_t n;
  napi_get_array_length(env, v, &n);
  if (n > MAX_FDS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "at most 253 fds per message");
    return -1;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    if (get_fd(env, e, &fds[i])) return -1;
  }
  *count = n;
  return 0;
}

static int get_timeout(napi_env env, napi_value v, int *out) {
  napi_valuetype t;
  *out = DEFAULT_TIMEOUT_MS;
  if (napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null) return 0;
  int64_t n;
  if (get_int(env, v, "timeoutMs", &n)) return -1;
  if (n < 0 || n > 3600000) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "timeoutMs must be within 0..3600000");
    return -1;
  }
  *out = (int)n;
  return 0;
}

// ---- sending ----

// One unbound datagram socket per call: a message is rare (notify) or cheap next to the
// work that produced it (an audit record); no state to keep across forks or reloads.
// The default send buffer bounds a datagram (~208 KiB): larger journal entries fail with
// EMSGSIZE and go through sendMemfd, as sd_journal_send does.
// timeout_ms = 0 never blocks (EAGAIN when the receiver's queue is full).
static int send_unix_dgram(const struct sockaddr_un *sa, socklen_t salen, const void *data,
                           size_t len, const int *fds, size_t nfds, int timeout_ms,
                           const char **failed) {
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    *failed = "socket";
    return errno;
  }
  if (timeout_ms > 0) {
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    (void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
  struct msghdr mh = {0};
  mh.msg_name = (void *)sa;
  mh.msg_namelen = salen;
  mh.msg_iov = len ? &iov : NULL;
  mh.msg_iovlen = len ? 1 : 0;
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    mh.msg_control = control.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  int flags = MSG_NOSIGNAL | (timeout_ms == 0 ? MSG_DONTWAIT : 0);
  ssize_t r;
  do r = sendmsg(s, &mh, flags);
  while (r < 0 && errno == EINTR);
  int err = r < 0 ? errno : 0;
  if (err == EWOULDBLOCK) err = EAGAIN;  // SO_SNDTIMEO expiry reports EAGAIN too
  close(s);
  if (err) *failed = "sendmsg";
  return err;
}

// sendDatagram(path, data, fds?, timeoutMs?) — also exported as sdNotify.
static napi_value SendDatagram(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "sendDatagram(path, data, fds?, timeoutMs?)");
  struct sockaddr_un sa;
  socklen_t salen;
  if (get_unix_address(env, argv[0], &sa, &salen)) return NULL;
  int fds[MAX_FDS];
  size_t nfds = 0;
  int timeout_ms;
  if (argc > 2 && get_fd_array(env, argv[2], fds, &nfds)) return NULL;
  napi_value undef;
  napi_get_undefined(env, &undef);
  if (get_timeout(env, argc > 3 ? argv[3] : undef, &timeout_ms)) return NULL;
  char *data;
  size_t len;
  int owned;
  if (get_bytes(env, argv[1], &data, &len, &owned)) return NULL;
  const char *failed = NULL;
  int err = send_unix_dgram(&sa, salen, data, len, fds, nfds, timeout_ms, &failed);
  if (owned) free(data);
  if (err) return throw_errno(env, err, failed);
  return undef;
}

// sendMemfd(path, data, timeoutMs?): the journald way to ship an entry too large for one
// datagram — a sealed memfd passed alone in an empty datagram.
static napi_value SendMemfd(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "sendMemfd(path, data, timeoutMs?)");
  struct sockaddr_un sa;
  socklen_t salen;
  if (get_unix_address(env, argv[0], &sa, &salen)) return NULL;
  napi_value undef;
  napi_get_undefined(env, &undef);
  int timeout_ms;
  if (get_timeout(env, argc > 2 ? argv[2] : undef, &timeout_ms)) return NULL;
  char *data;
  size_t len;
  int owned;
  if (get_bytes(env, argv[1], &data, &len, &owned)) return NULL;
  const char *failed = NULL;
  int err = 0;
  int m = memfd_create("portail-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (m < 0) {
    err = errno;
    failed = "memfd_create";
  }
  for (size_t off = 0; !err && off < len;) {
    ssize_t w = write(m, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      err = errno;
      failed = "write";
    } else {
      off += (size_t)w;
    }
  }
  if (!err && fcntl(m, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
    err = errno;
    failed = "fcntl";
  }
  if (!err) err = send_unix_dgram(&sa, salen, NULL, 0, &m, 1, timeout_ms, &failed);
  if (m >= 0) close(m);
  if (owned) free(data);
  if (err) return throw_errno(env, err, failed);
  return undef;
}

// notifyBarrier(path, timeoutMs?) -> boolean: sends BARRIER=1 with the write end of a
// fresh pipe and waits until the receiver closes it, which systemd does once it has
// processed every earlier message from us (systemd ≥ 246). false = timed out.
static napi_value NotifyBarrier(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "notifyBarrier(path, timeoutMs?)");
  struct sockaddr_un sa;
  socklen_t salen;
  if (get_unix_address(env, argv[0], &sa, &salen)) return NULL;
  napi_value undef;
  napi_get_undefined(env, &undef);
  int timeout_ms;
  if (get_timeout(env, argc > 1 ? argv[1] : undef, &timeout_ms)) return NULL;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return throw_errno(env, errno, "pipe2");
  const char *failed = NULL;
  static const char msg[] = "BARRIER=1";
  int err = send_unix_dgram(&sa, salen, msg, sizeof msg - 1, &p[1], 1, timeout_ms, &failed);
  close(p[1]);
  if (err) {
    close(p[0]);
    return throw_errno(env, err, failed);
  }
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  int done = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (elapsed >= timeout_ms) break;
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int r = poll(&pf, 1, (int)(timeout_ms - elapsed));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0 && (pf.revents & (POLLHUP | POLLERR))) done = 1;
    break;
  }
  close(p[0]);
  napi_value result;
  CHECK(napi_get_boolean(env, done, &result));
  return result;
}

// ---- socket introspection ----

static napi_value GetPeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "getPeerCred(fd)");
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return throw_errno(env, errno, "getsockopt");
  // Linux answers pid 0 / uid -1 for sockets that carry no credentials (not AF_UNIX,
  // socketpair peers that are gone...): never let that pass for root or a real user.
  if (cred.pid == 0 || cred.uid == (uid_t)-1) return throw_errno(env, ENODATA, "getsockopt");
  napi_value obj, pid, uid, gid;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_int32(env, cred.pid, &pid));
  CHECK(napi_create_uint32(env, cred.uid, &uid));
  CHECK(napi_create_uint32(env, cred.gid, &gid));
  CHECK(napi_set_named_property(env, obj, "pid", pid));
  CHECK(napi_set_named_property(env, obj, "uid", uid));
  CHECK(napi_set_named_property(env, obj, "gid", gid));
  return obj;
}

static const char *family_name(int f) {
  switch (f) {
    case AF_UNIX: return "unix";
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    case AF_NETLINK: return "netlink";
    default: return "other";
  }
}

static const char *type_name(int t) {
  switch (t) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "dgram";
    case SOCK_SEQPACKET: return "seqpacket";
    default: return "other";
  }
}

// getSocketInfo(fd) -> {family, type, listening}; throws ENOTSOCK for a non-socket.
static napi_value GetSocketInfo(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "getSocketInfo(fd)");
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
    return throw_errno(env, errno, "getsockname");
  int type = 0, acc = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    return throw_errno(env, errno, "getsockopt");
  len = sizeof acc;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0) acc = 0;
  napi_value obj, family, stype, listening;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_string_utf8(env, family_name(ss.ss_family), NAPI_AUTO_LENGTH, &family));
  CHECK(napi_create_string_utf8(env, type_name(type), NAPI_AUTO_LENGTH, &stype));
  CHECK(napi_get_boolean(env, acc != 0, &listening));
  CHECK(napi_set_named_property(env, obj, "family", family));
  CHECK(napi_set_named_property(env, obj, "type", stype));
  CHECK(napi_set_named_property(env, obj, "listening", listening));
  return obj;
}

// setCloexec(fd, on): inherited LISTEN_FDS arrive without FD_CLOEXEC; set it so that the
// programs the daemon spawns (ssh, tpm2 tools) do not inherit our listeners.
static napi_value SetCloexec(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "setCloexec(fd, on)");
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  bool on;
  if (napi_get_value_bool(env, argv[1], &on) != napi_ok)
    return throw_type(env, "on must be a boolean");
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl");
  int wanted = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (wanted != flags && fcntl(fd, F_SETFD, wanted) < 0) return throw_errno(env, errno, "fcntl");
  napi_value undef;
  napi_get_undefined(env, &undef);
  return undef;
}

// ---- receive helpers (tests; a fake NOTIFY_SOCKET or journald socket) ----

// bindDatagram(path) -> fd: a non-blocking AF_UNIX datagram socket bound to path
// ("@name" = abstract), with SO_PASSCRED so that receivers learn the sender's pid.
static napi_value BindDatagram(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "bindDatagram(path)");
  struct sockaddr_un sa;
  socklen_t salen;
  if (get_unix_address(env, argv[0], &sa, &salen)) return NULL;
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return throw_errno(env, errno, "socket");
  int one = 1;
  (void)setsockopt(s, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
  int size = RCVBUF_WANTED;
  if (setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    (void)setsockopt(s, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (bind(s, (struct sockaddr *)&sa, salen) < 0) {
    int err = errno;
    close(s);
    return throw_errno(env, err, "bind");
  }
  napi_value result;
  CHECK(napi_create_int32(env, s, &result));
  return result;
}

// recvDatagram(fd, timeoutMs?) -> {data: Buffer, fds: number[], pid, uid, gid} | null
// Waits up to timeoutMs (default 1000) for one datagram; received fds are close-on-exec
// and owned by the caller.
static napi_value RecvDatagram(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "recvDatagram(fd, timeoutMs?)");
  int fd;
  if (get_fd(env, argv[0], &fd)) return NULL;
  napi_value undef, result;
  napi_get_undefined(env, &undef);
  int timeout_ms;
  if (get_timeout(env, argc > 1 ? argv[1] : undef, &timeout_ms)) return NULL;
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  int r;
  do r = poll(&pf, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, errno, "poll");
  if (r == 0) {
    napi_get_null(env, &result);
    return result;
  }
  // Peek the size first so that large journal datagrams are read whole.
  ssize_t size = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  if (size < 0) {
    if (errno == EAGAIN) {
      napi_get_null(env, &result);
      return result;
    }
    return throw_errno(env, errno, "recv");
  }
  char *buf = malloc(size > 0 ? (size_t)size : 1);
  if (!buf) return throw_errno(env, ENOMEM, "malloc");
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = buf, .iov_len = (size_t)size};
  struct msghdr mh = {0};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control.buf;
  mh.msg_controllen = sizeof control.buf;
  ssize_t n;
  do n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    free(buf);
    return throw_errno(env, err, "recvmsg");
  }
  napi_value obj, data, fdarr;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_buffer_copy(env, (size_t)n, buf, NULL, &data));
  free(buf);
  CHECK(napi_set_named_property(env, obj, "data", data));
  CHECK(napi_create_array(env, &fdarr));
  uint32_t count = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_RIGHTS) {
      size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      int *p = (int *)CMSG_DATA(c);
      for (size_t i = 0; i < k; i++) {
        napi_value v;
        CHECK(napi_create_int32(env, p[i], &v));
        CHECK(napi_set_element(env, fdarr, count++, v));
      }
    } else if (c->cmsg_type == SCM_CREDENTIALS) {
      struct ucred cred;
      memcpy(&cred, CMSG_DATA(c), sizeof cred);
      napi_value pid, uid, gid;
      CHECK(napi_create_int32(env, cred.pid, &pid));
      CHECK(napi_create_uint32(env, cred.uid, &uid));
      CHECK(napi_create_uint32(env, cred.gid, &gid));
      CHECK(napi_set_named_property(env, obj, "pid", pid));
      CHECK(napi_set_named_property(env, obj, "uid", uid));
      CHECK(napi_set_named_property(env, obj, "gid", gid));
    }
  }
  CHECK(napi_set_named_property(env, obj, "fds", fdarr));
  napi_value truncated;
  CHECK(napi_get_boolean(env, (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0, &truncated));
  CHECK(napi_set_named_property(env, obj, "truncated", truncated));
  return obj;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sendDatagram", NULL, SendDatagram, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sdNotify", NULL, SendDatagram, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendMemfd", NULL, SendMemfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notifyBarrier", NULL, NotifyBarrier, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getPeerCred", NULL, GetPeerCred, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getSocketInfo", NULL, GetSocketInfo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setCloexec", NULL, SetCloexec, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bindDatagram", NULL, BindDatagram, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recvDatagram", NULL, RecvDatagram, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sockDiagOwner", NULL, SockDiagOwner, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  // sockDiagOwner keeps one netlink socket per environment (main thread, each worker).
  void *state = sock_diag_state_new();
  if (!state || napi_set_instance_data(env, state, sock_diag_state_free, NULL) != napi_ok) {
    sock_diag_state_free(env, state, NULL);
    napi_throw_error(env, "ENOMEM", "portail_systemd: cannot allocate sock_diag state");
    return NULL;
  }
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
