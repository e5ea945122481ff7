// sockDiagOwner: the owner uid and inode of one TCP socket, found by its exact 4-tuple
// with a NETLINK_SOCK_DIAG request (inet_diag, INET_DIAG_REQ_V2 without a dump). The
// kernel answers from its connection hash in a few microseconds, where reading
// /proc/net/tcp walks every socket. Synchronous but bounded: a non-blocking netlink
// socket, a deadline for the answer, stale or foreign messages discarded.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addon.h"

#define DEFAULT_DIAG_TIMEOUT_MS 100
#define MAX_DIAG_TIMEOUT_MS 10000
// From include/net/tcp_states.h (not exported to user space).
#define TCP_LISTEN_STATE 10

struct sd_state {
  int fd;  // reused netlink socket, -1 = none open
  uint32_t seq;
};

void *sock_diag_state_new(void) {
  struct sd_state *st = calloc(1, sizeof *st);
  if (st) st->fd = -1;
  return st;
}

void sock_diag_state_free(napi_env env, void *data, void *hint) {
  struct sd_state *st = data;
  if (!st) return;
  if (st->fd >= 0) close(st->fd);
  free(st);
}

// The address as 16 bytes, IPv4 in its IPv4-mapped IPv6 form; 4 = IPv4, 6 = IPv6, 0 = not an IP.
static int parse_ip(const char *text, unsigned char out[16]) {
  struct in_addr a4;
  if (inet_pton(AF_INET, text, &a4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a4, 4);
    return 4;
  }
  return inet_pton(AF_INET6, text, out) == 1 ? 6 : 0;
}

static int get_ip(napi_env env, napi_value v, const char *what, unsigned char out[16]) {
  char text[INET6_ADDRSTRLEN + 1];
  size_t n;
  if (napi_get_value_string_utf8(env, v, text, sizeof text, &n) != napi_ok) {
    throw_type(env, what);
    return 0;
  }
  int kind = n < sizeof text - 1 ? parse_ip(text, out) : 0;
  if (!kind) napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", what);
  return kind;
}

static int get_port(napi_env env, napi_value v, const char *what, uint16_t *out) {
  int64_t n;
  if (get_int(env, v, what, &n)) return -1;
  if (n < 0 || n > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", what);
    return -1;
  }
  *out = (uint16_t)n;
  return 0;
}

static long ms_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

// The reply's address as 16 bytes (an AF_INET socket's in mapped form).
static void reply_ip(const struct inet_diag_msg *m, const __be32 *addr, unsigned char out[16]) {
  if (m->idiag_family == AF_INET) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, addr, 4);
  } else {
    memcpy(out, addr, 16);
  }
}

struct query {
  unsigned char src[16], dst[16];  // the peer's socket: local = src, remote = dst
  uint16_t sport, dport;
  int family;
};

// Outcome of one exchange: 1 = found (*uid, *inode set), 0 = no such socket, < 0 = -errno
// (*failed names the call).
static int exchange(struct sd_state *st, int fd, const struct query *q, int timeout_ms,
                    uint32_t *uid, uint32_t *inode, const char **failed) {
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 req;
  } msg;
  memset(&msg, 0, sizeof msg);
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;
  uint32_t seq = ++st->seq;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = (uint8_t)q->family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = ~0u;
  msg.req.id.idiag_sport = htons(q->sport);
  msg.req.id.idiag_dport = htons(q->dport);
  if (q->family == AF_INET) {
    memcpy(&msg.req.id.idiag_src[0], q->src + 12, 4);
    memcpy(&msg.req.id.idiag_dst[0], q->dst + 12, 4);
  } else {
    memcpy(msg.req.id.idiag_src, q->src, 16);
    memcpy(msg.req.id.idiag_dst, q->dst, 16);
  }
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t r;
  do r = sendto(fd, &msg, sizeof msg, MSG_NOSIGNAL, (struct sockaddr *)&kernel, sizeof kernel);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    *failed = "sendto";
    return -errno;
  }

  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  union {
    char bytes[8192];
    struct nlmsghdr align;
  } buf;
  for (;;) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(fd, buf.bytes, sizeof buf.bytes, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr *)&from, &fromlen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      // The kernel usually answers within sendto(); wait only for what is left.
      long left = timeout_ms - ms_since(&start);
      if (left <= 0) {
        *failed = "recvfrom";
        return -ETIMEDOUT;
      }
      struct pollfd pf = {.fd = fd, .events = POLLIN};
      if (poll(&pf, 1, (int)left) < 0 && errno != EINTR) {
        *failed = "poll";
        return -errno;
      }
      continue;
    }
    if (n < 0) {
      *failed = "recvfrom";
      return -errno;
    }
    // Anyone may unicast to our port id: only the kernel (port id 0) is believed.
    if (fromlen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    if ((size_t)n > sizeof buf.bytes) {
      *failed = "recvfrom";
      return -EMSGSIZE;
    }
    int len = (int)n;
    for (struct nlmsghdr *h = &buf.align; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq != seq) continue;  // the late answer to an earlier, timed-out call
      if (h->nlmsg_type == NLMSG_ERROR) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
          *failed = "recvfrom";
          return -EPROTO;
        }
        int err = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        if (err == 0) continue;  // an acknowledgement, not the answer
        if (err == ENOENT) return 0;
        *failed = "sock_diag";
        return err > 0 ? -err : -EPROTO;
      }
      if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
          h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
        *failed = "recvfrom";
        return -EPROTO;
      }
      const struct inet_diag_msg *m = NLMSG_DATA(h);
      // The kernel's exact lookup falls back to listening sockets: accept only the socket
      // whose own 4-tuple is the one asked for, never a listener on the peer's port.
      unsigned char src[16], dst[16];
      reply_ip(m, m->id.idiag_src, src);
      reply_ip(m, m->id.idiag_dst, dst);
      if ((m->idiag_family != AF_INET && m->idiag_family != AF_INET6) ||
          m->idiag_state == TCP_LISTEN_STATE || ntohs(m->id.idiag_sport) != q->sport ||
          ntohs(m->id.idiag_dport) != q->dport || memcmp(src, q->src, 16) != 0 ||
          memcmp(dst, q->dst, 16) != 0)
        return 0;
      // inode 0: no socket object any more (TIME_WAIT, orphan): nobody to attribute.
      if (m->idiag_inode == 0) return 0;
      *uid = m->idiag_uid;
      *inode = m->idiag_inode;
      return 1;
    }
  }
}

// sockDiagOwner(peerIp, peerPort, localIp, localPort, timeoutMs?, reuse?) -> {uid, inode} | null
// Looks up the socket whose local end is peerIp:peerPort and remote end localIp:localPort
// (the client's end of a connection we accepted). null = the kernel has no such socket
// (or only a listener, or one in TIME_WAIT); throws (code/errno/syscall) when it could not
// be asked: no NETLINK_SOCK_DIAG here, no inet_diag, a timeout. reuse = false opens and
// closes a netlink socket for this one call instead of keeping one open.
napi_value SockDiagOwner(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 4)
    return throw_type(env, "sockDiagOwner(peerIp, peerPort, localIp, localPort, timeoutMs?, reuse?)");
  struct query q;
  int k1 = get_ip(env, argv[0], "peerIp must be an IPv4 or IPv6 address", q.src);
  if (!k1) return NULL;
  if (get_port(env, argv[1], "peerPort must be an integer within 0..65535", &q.sport)) return NULL;
  int k2 = get_ip(env, argv[2], "localIp must be an IPv4 or IPv6 address", q.dst);
  if (!k2) return NULL;
  if (get_port(env, argv[3], "localPort must be an integer within 0..65535", &q.dport)) return NULL;
  // Both IPv4: AF_INET. Otherwise AF_INET6 with any IPv4 in mapped form; the kernel looks
  // mapped pairs up in the IPv4 hash, where dual-stack sockets talking IPv4 live too.
  q.family = (k1 == 4 && k2 == 4) ? AF_INET : AF_INET6;
  int timeout_ms = DEFAULT_DIAG_TIMEOUT_MS;
  napi_valuetype t;
  if (argc > 4 && napi_typeof(env, argv[4], &t) == napi_ok && t != napi_undefined && t != napi_null) {
    int64_t n;
    if (get_int(env, argv[4], "timeoutMs", &n)) return NULL;
    if (n < 0 || n > MAX_DIAG_TIMEOUT_MS) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "timeoutMs must be within 0..10000");
      return NULL;
    }
    timeout_ms = (int)n;
  }
  bool reuse = true;
  if (argc > 5 && napi_typeof(env, argv[5], &t) == napi_ok && t != napi_undefined && t != napi_null) {
    if (napi_get_value_bool(env, argv[5], &reuse) != napi_ok)
      return throw_type(env, "reuse must be a boolean");
  }

  struct sd_state *st = NULL;
  if (napi_get_instance_data(env, (void **)&st) != napi_ok || !st)
    return throw_errno(env, EINVAL, "sockDiagOwner");
  int fd = reuse ? st->fd : -1;
  if (fd < 0) {
    fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_SOCK_DIAG);
    if (fd < 0) return throw_errno(env, errno, "socket");
    if (reuse) st->fd = fd;
  }
  uint32_t uid = 0, inode = 0;
  const char *failed = "sockDiagOwner";
  int r = exchange(st, fd, &q, timeout_ms, &uid, &inode, &failed);
  // After an error the socket may hold a late answer or be in a bad state: start afresh.
  if (!reuse || r < 0) {
    close(fd);
    if (reuse) st->fd = -1;
  }
  if (r < 0) return throw_errno(env, -r, failed);
  napi_value result;
  if (r == 0) {
    napi_get_null(env, &result);
    return result;
  }
  napi_value u, i;
  if (napi_create_object(env, &result) != napi_ok || napi_create_uint32(env, uid, &u) != napi_ok ||
      napi_create_uint32(env, inode, &i) != napi_ok ||
      napi_set_named_property(env, result, "uid", u) != napi_ok ||
      napi_set_named_property(env, result, "inode", i) != napi_ok)
    return NULL;
  return result;
}
