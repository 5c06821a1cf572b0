/*
 * Batched UDP socket I/O for Linux: recvmmsg(2) and sendmmsg(2) with the control messages
 * of every datagram (TTL/hop limit, TOS/traffic class, destination address, kernel receive
 * timestamp on the way in; source address and TOS on the way out).
 *
 * Written by hand because Python's socket module has neither call and no maintained
 * package provides them with per-datagram control messages (bench/README.md has the
 * measurements that led here).  Optional: built at install when a C compiler and the
 * Python headers are there; stamp_suite/net/batch.py falls back to the standard socket
 * module otherwise.  It only moves bytes and reads kernel metadata: every protocol rule
 * stays in the Python engine.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>

#define CONTROL_SPACE 512 /* TTL, TOS, PKTINFO and a timespec need about 200 */

typedef struct {
    PyObject_HEAD
    int fd;
    unsigned int count;
    size_t bufsize;
    char *buffers;                /* count * bufsize */
    char *control;                /* count * CONTROL_SPACE */
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct sockaddr_storage *addrs;
    Py_buffer *views;             /* the replies' data, held during a send */
    /* The last source and destination addresses read, with the objects made for them: a flow's
     * datagrams come from one address to one address, so most reads reuse both objects (and
     * the source's string keeps its hash for the session lookup). */
    struct sockaddr_storage last_peer;
    socklen_t last_peer_len;
    PyObject *last_source;        /* (host, port) */
    unsigned char last_dst[16];
    Py_ssize_t last_dst_len;
    PyObject *last_destination;   /* packed 4/16 octets */
} Batch;

static void Batch_free(Batch *self)
{
    PyMem_Free(self->buffers);
    PyMem_Free(self->control);
    PyMem_Free(self->msgs);
    PyMem_Free(self->iov);
    PyMem_Free(self->addrs);
    PyMem_Free(self->views);
    self->buffers = self->control = NULL;
    self->msgs = NULL;
    self->iov = NULL;
    self->addrs = NULL;
    self->views = NULL;
    Py_CLEAR(self->last_source);
    Py_CLEAR(self->last_destination);
}

static void Batch_dealloc(Batch *self)
{
    Batch_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Batch_init(Batch *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "count", "bufsize", NULL};
    int fd;
    unsigned int count = 32;
    Py_ssize_t bufsize = 9216;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i|In", kwlist, &fd, &count, &bufsize))
        return -1;
    if (count < 1 || count > 1024 || bufsize < 64) {
        PyErr_SetString(PyExc_ValueError, "count must be 1..1024 and bufsize at least 64");
        return -1;
    }
    Batch_free(self); /* __init__ called again */
    self->fd = fd;
    self->count = count;
    self->bufsize = (size_t)bufsize;
    self->buffers = PyMem_Malloc(count * self->bufsize);
    self->control = PyMem_Malloc(count * CONTROL_SPACE);
    self->msgs = PyMem_Calloc(count, sizeof(struct mmsghdr));
    self->iov = PyMem_Calloc(count, sizeof(struct iovec));
    self->addrs = PyMem_Calloc(count, sizeof(struct sockaddr_storage));
    self->views = PyMem_Calloc(count, sizeof(Py_buffer));
    if (!self->buffers || !self->control || !self->msgs || !self->iov || !self->addrs || !self->views) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* (host, port) as the socket module gives it: text address (with %scope for a link-local
 * IPv6 one), port number. */
static PyObject *address_tuple(const struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
        return Py_BuildValue("(si)", text, ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, text, INET6_ADDRSTRLEN);
        if (a->sin6_scope_id) {
            char name[IF_NAMESIZE];
            size_t used = strlen(text);
            if (if_indextoname(a->sin6_scope_id, name))
                snprintf(text + used, sizeof text - used, "%%%s", name);
            else
                snprintf(text + used, sizeof text - used, "%%%u", a->sin6_scope_id);
        }
        return Py_BuildValue("(si)", text, ntohs(a->sin6_port));
    }
    Py_RETURN_NONE;
}

/* The (host, port) of a source address: the last one's object again when it is the same. */
static PyObject *source_tuple(Batch *self, const struct sockaddr_storage *ss, socklen_t len)
{
    if (self->last_source && len == self->last_peer_len && memcmp(ss, &self->last_peer, len) == 0) {
        Py_INCREF(self->last_source);
        return self->last_source;
    }
    PyObject *addr = address_tuple(ss);
    if (!addr)
        return NULL;
    Py_INCREF(addr);
    Py_XSETREF(self->last_source, addr);
    memcpy(&self->last_peer, ss, len);
    self->last_peer_len = len;
    return addr;
}

/* A destination address as bytes: the last one's object again when it is the same. */
static PyObject *destination_bytes(Batch *self, const void *octets, Py_ssize_t n)
{
    if (self->last_destination && n == self->last_dst_len && memcmp(octets, self->last_dst, (size_t)n) == 0) {
        Py_INCREF(self->last_destination);
        return self->last_destination;
    }
    PyObject *dst = PyBytes_FromStringAndSize((const char *)octets, n);
    if (!dst)
        return NULL;
    Py_INCREF(dst);
    Py_XSETREF(self->last_destination, dst);
    memcpy(self->last_dst, octets, (size_t)n);
    self->last_dst_len = n;
    return dst;
}

static int cmsg_int(const struct cmsghdr *c)
{
    if (c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        int v;
        memcpy(&v, CMSG_DATA(c), sizeof v);
        return v;
    }
    return *(const unsigned char *)CMSG_DATA(c); /* IP_TOS may come as one octet */
}

/*
 * recv() -> list: every datagram waiting, up to count, each as (data, (host, port), ttl, tos,
 * destination, kernel_ns, user_ns, truncated), with None for what the kernel did not say;
 * user_ns is CLOCK_REALTIME read right after the call.  Raises BlockingIOError when nothing
 * is waiting.
 */
static PyObject *Batch_recv(Batch *self, PyObject *Py_UNUSED(ignored))
{
    unsigned int i;
    int n;
    struct timespec now;
    for (i = 0; i < self->count; i++) {
        self->iov[i].iov_base = self->buffers + i * self->bufsize;
        self->iov[i].iov_len = self->bufsize;
        struct msghdr *h = &self->msgs[i].msg_hdr;
        h->msg_name = &self->addrs[i];
        h->msg_namelen = sizeof(struct sockaddr_storage);
        h->msg_iov = &self->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = self->control + i * CONTROL_SPACE;
        h->msg_controllen = CONTROL_SPACE;
        h->msg_flags = 0;
    }
    Py_BEGIN_ALLOW_THREADS
    n = recvmmsg(self->fd, self->msgs, self->count, MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    if (n < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    clock_gettime(CLOCK_REALTIME, &now);
    PyObject *user_ns = PyLong_FromLongLong((long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    if (!user_ns)
        return NULL;
    PyObject *list = PyList_New(n);
    if (!list) {
        Py_DECREF(user_ns);
        return NULL;
    }
    for (i = 0; i < (unsigned int)n; i++) {
        struct msghdr *h = &self->msgs[i].msg_hdr;
        PyObject *ttl = Py_None, *tos = Py_None, *dst = Py_None, *kts = Py_None;
        Py_INCREF(ttl); Py_INCREF(tos); Py_INCREF(dst); Py_INCREF(kts);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            PyObject **slot = NULL, *value = NULL;
            if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
                (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
                slot = &ttl;
                value = PyLong_FromLong(cmsg_int(c));
            } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) ||
                       (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS)) {
                slot = &tos;
                value = PyLong_FromLong(cmsg_int(c) & 0xFF);
            } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                const struct in_pktinfo *p = (const struct in_pktinfo *)CMSG_DATA(c);
                slot = &dst; /* ipi_addr: the header's destination address */
                value = destination_bytes(self, &p->ipi_addr, 4);
            } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
                const struct in6_pktinfo *p = (const struct in6_pktinfo *)CMSG_DATA(c);
                slot = &dst;
                value = destination_bytes(self, &p->ipi6_addr, 16);
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                slot = &kts;
                value = PyLong_FromLongLong((long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
            }
            if (slot) {
                if (!value)
                    goto fail_item;
                Py_DECREF(*slot);
                *slot = value;
            }
        }
        {
            size_t len = self->msgs[i].msg_len;
            PyObject *truncated = (h->msg_flags & MSG_TRUNC) ? Py_True : Py_False;
            if (len > self->bufsize)
                len = self->bufsize;
            socklen_t peer_len = h->msg_namelen <= sizeof(struct sockaddr_storage) ? h->msg_namelen
                                                                                  : sizeof(struct sockaddr_storage);
            PyObject *addr = source_tuple(self, &self->addrs[i], peer_len);
            PyObject *data = PyBytes_FromStringAndSize(self->iov[i].iov_base, (Py_ssize_t)len);
            PyObject *item = addr && data ? PyTuple_New(8) : NULL;
            if (!item) {
                Py_XDECREF(addr);
                Py_XDECREF(data);
                goto fail_item;
            }
            /* the tuple takes over every reference from here on */
            PyTuple_SET_ITEM(item, 0, data);
            PyTuple_SET_ITEM(item, 1, addr);
            PyTuple_SET_ITEM(item, 2, ttl);
            PyTuple_SET_ITEM(item, 3, tos);
            PyTuple_SET_ITEM(item, 4, dst);
            PyTuple_SET_ITEM(item, 5, kts);
            Py_INCREF(user_ns);
            PyTuple_SET_ITEM(item, 6, user_ns);
            Py_INCREF(truncated);
            PyTuple_SET_ITEM(item, 7, truncated);
            PyList_SET_ITEM(list, i, item);
            continue;
        }
    fail_item:
        Py_DECREF(ttl); Py_DECREF(tos); Py_DECREF(dst); Py_DECREF(kts);
        Py_DECREF(list);
        Py_DECREF(user_ns);
        return NULL;
    }
    Py_DECREF(user_ns);
    return list;
}

/* A destination as a sockaddr of the socket's family (IPv4 text on an IPv6 socket: v4-mapped). */
static int fill_destination(int family, const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (port < 0 || port > 65535)
        return -1;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        *len = sizeof *a;
        return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof *a;
    const char *scope = strchr(host, '%');
    if (scope) { /* a link-local address: fe80::1%eth0 (or %3) */
        char bare[INET6_ADDRSTRLEN];
        size_t n = (size_t)(scope - host);
        if (n >= sizeof bare)
            return -1;
        memcpy(bare, host, n);
        bare[n] = '\0';
        unsigned int index = if_nametoindex(scope + 1);
        a->sin6_scope_id = index ? index : (unsigned int)strtoul(scope + 1, NULL, 10);
        return inet_pton(AF_INET6, bare, &a->sin6_addr) == 1 ? 0 : -1;
    }
    if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1)
        return 0;
    struct in_addr v4;
    if (inet_pton(AF_INET, host, &v4) != 1)
        return -1;
    a->sin6_addr.s6_addr[10] = 0xff;
    a->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
    return 0;
}

/* The control messages of one reply: its source address, srclen (4 or 16) octets at src, none
 * when srclen is 0 (a wildcard-bound socket's reply leaves from the address the request came
 * to), and its TOS / traffic class (none when tos < 0).  -1 when the source cannot be used on
 * this socket. */
static int fill_control(int family, const unsigned char *src, Py_ssize_t srclen, int tos, int v4_path,
                        struct msghdr *h, char *control)
{
    size_t used = 0;
    h->msg_control = control;
    h->msg_controllen = CONTROL_SPACE;
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    if (srclen) {
        if (family == AF_INET6) {
            struct in6_pktinfo p;
            memset(&p, 0, sizeof p);
            if (srclen == 16) {
                memcpy(&p.ipi6_addr, src, 16);
            } else { /* an IPv4 source on a dual-stack socket: v4-mapped */
                p.ipi6_addr.s6_addr[10] = 0xff;
                p.ipi6_addr.s6_addr[11] = 0xff;
                memcpy(&p.ipi6_addr.s6_addr[12], src, 4);
            }
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof p);
            memcpy(CMSG_DATA(c), &p, sizeof p);
            used += CMSG_SPACE(sizeof p);
        } else if (family == AF_INET && srclen == 4) {
            struct in_pktinfo p;
            memset(&p, 0, sizeof p);
            memcpy(&p.ipi_spec_dst, src, 4);
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof p);
            memcpy(CMSG_DATA(c), &p, sizeof p);
            used += CMSG_SPACE(sizeof p);
        } else {
            return -1; /* e.g. an IPv6 source on an IPv4 socket */
        }
        c = (struct cmsghdr *)(control + used);
    }
    if (tos >= 0) {
        int v = tos & 0xFF;
        c->cmsg_level = v4_path ? IPPROTO_IP : IPPROTO_IPV6;
        c->cmsg_type = v4_path ? IP_TOS : IPV6_TCLASS;
        c->cmsg_len = CMSG_LEN(sizeof v);
        memcpy(CMSG_DATA(c), &v, sizeof v);
        used += CMSG_SPACE(sizeof v);
    }
    h->msg_controllen = used;
    if (!used)
        h->msg_control = NULL;
    return 0;
}

/* Text without an embedded NUL as UTF-8 (C's string functions would stop at one), or NULL
 * with no exception set. */
static const char *plain_text(PyObject *text)
{
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (!utf8 || strlen(utf8) != (size_t)n) {
        PyErr_Clear();
        return NULL;
    }
    return utf8;
}

/* A reply's source address as 4 or 16 octets: packed already, or text (a %scope ignored).
 * Returns the length, 0 for an empty one (not pinned, as the standard path takes it), or -1
 * (no exception set) when it is neither. */
static Py_ssize_t source_octets(PyObject *source, unsigned char out[16])
{
    if (PyBytes_Check(source)) {
        Py_ssize_t n = PyBytes_GET_SIZE(source);
        if (n != 0 && n != 4 && n != 16)
            return -1;
        memcpy(out, PyBytes_AS_STRING(source), (size_t)n);
        return n;
    }
    if (!PyUnicode_Check(source))
        return -1;
    const char *text = plain_text(source);
    if (!text)
        return -1;
    if (!*text)
        return 0;
    char bare[INET6_ADDRSTRLEN];
    size_t n = strcspn(text, "%");
    if (n >= sizeof bare)
        return -1;
    memcpy(bare, text, n);
    bare[n] = '\0';
    if (inet_pton(AF_INET, bare, out) == 1)
        return 4;
    return inet_pton(AF_INET6, bare, out) == 1 ? 16 : -1;
}

/* What send() needs of one reply, or -1 (no exception set) when this call cannot send it as
 * given: the batch ends before it, and the caller sends it alone by the standard socket path,
 * which sends it or says why not, so that both paths treat every reply alike. */
static int reply_parts(PyObject *reply, int per_packet_tos, PyObject **data, const char **host, int *port,
                       PyObject **source, int *tos)
{
    int overflow;
    if (!PyTuple_Check(reply) || PyTuple_GET_SIZE(reply) < 4)
        return -1;
    /* (host, port) only: an IPv6 (host, port, flowinfo, scope_id) goes the standard way */
    PyObject *destination = PyTuple_GET_ITEM(reply, 1);
    if (!PyTuple_Check(destination) || PyTuple_GET_SIZE(destination) != 2 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(destination, 0)) || !PyLong_Check(PyTuple_GET_ITEM(destination, 1)))
        return -1;
    long port_value = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(destination, 1), &overflow);
    if (overflow || port_value < 0 || port_value > 65535)
        return -1;
    *host = plain_text(PyTuple_GET_ITEM(destination, 0));
    if (!*host)
        return -1;
    *port = (int)port_value;
    *tos = -1; /* the socket's own */
    PyObject *tos_object = PyTuple_GET_ITEM(reply, 3);
    if (per_packet_tos && tos_object != Py_None) {
        if (!PyLong_Check(tos_object))
            return -1;
        long value = PyLong_AsLongAndOverflow(tos_object, &overflow);
        if (overflow || value < 0 || value > 255)
            return -1;
        *tos = (int)value;
    }
    *data = PyTuple_GET_ITEM(reply, 0);
    *source = PyTuple_GET_ITEM(reply, 2);
    return 0;
}

/*
 * send(family, replies, pin_source, per_packet_tos) -> number sent: replies is a sequence of
 * tuples that begin (data, (host, port), source, tos), as the reflector's replies do: source
 * None, the packed 4/16-octet local address or its text, used only when pin_source is true;
 * tos None or the octet, used only when per_packet_tos is true (else the socket's own).  One
 * sendmmsg call for the replies up to the first that this call cannot send (reply_parts, or a
 * destination or source of the other family): the count says where the kernel or that reply
 * stopped the batch; OSError when it is the first (the caller sends that one alone to learn
 * why, and goes on after it).
 */
static PyObject *Batch_send(Batch *self, PyObject *args)
{
    int family, pin_source, per_packet_tos;
    PyObject *replies;
    if (!PyArg_ParseTuple(args, "iOpp", &family, &replies, &pin_source, &per_packet_tos))
        return NULL;
    PyObject *seq = PySequence_Fast(replies, "replies must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(seq);
    if (total > (Py_ssize_t)self->count) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "more replies than the batch holds");
        return NULL;
    }
    Py_ssize_t held = 0, i;
    for (i = 0; i < total; i++) {
        PyObject *data, *source;
        const char *host;
        int port, tos;
        if (reply_parts(PySequence_Fast_GET_ITEM(seq, i), per_packet_tos, &data, &host, &port, &source, &tos) < 0)
            break;
        unsigned char src[16];
        Py_ssize_t srclen = 0;
        if (pin_source && source != Py_None && (srclen = source_octets(source, src)) < 0)
            break; /* not usable as a source */
        socklen_t alen;
        struct msghdr *h = &self->msgs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        if (fill_destination(family, host, port, &self->addrs[i], &alen) < 0)
            break; /* not reachable from this socket */
        struct in6_addr *dst6 = &((struct sockaddr_in6 *)&self->addrs[i])->sin6_addr;
        int v4_path = family == AF_INET || IN6_IS_ADDR_V4MAPPED(dst6);
        if (fill_control(family, src, srclen, tos, v4_path, h, self->control + i * CONTROL_SPACE) < 0)
            break;
        if (PyObject_GetBuffer(data, &self->views[i], PyBUF_SIMPLE) < 0) {
            PyErr_Clear(); /* not bytes-like: the standard path says so */
            break;
        }
        held = i + 1;
        self->iov[i].iov_base = self->views[i].buf;
        self->iov[i].iov_len = self->views[i].len;
        h->msg_name = &self->addrs[i];
        h->msg_namelen = alen;
        h->msg_iov = &self->iov[i];
        h->msg_iovlen = 1;
    }
    int n = 0;
    if (held) {
        Py_BEGIN_ALLOW_THREADS
        n = sendmmsg(self->fd, self->msgs, (unsigned int)held, MSG_DONTWAIT);
        Py_END_ALLOW_THREADS
    } else if (total) {
        errno = EAFNOSUPPORT;
        n = -1;
    }
    int saved = errno;
    for (i = 0; i < held; i++)
        PyBuffer_Release(&self->views[i]);
    Py_DECREF(seq);
    if (n < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(n);
}

/*
 * send_connected(datas) -> number sent: a Session-Sender's test packets, bytes-like objects, on
 * its connected socket in one sendmmsg call, no address and no control message (the socket
 * asks for every send's TX timestamp itself).  The count says where the kernel stopped the
 * batch; OSError when it refused the first.
 */
static PyObject *Batch_send_connected(Batch *self, PyObject *datas)
{
    PyObject *seq = PySequence_Fast(datas, "datas must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(seq), held = 0, i;
    if (total > (Py_ssize_t)self->count) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "more packets than the batch holds");
        return NULL;
    }
    for (i = 0; i < total; i++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(seq, i), &self->views[i], PyBUF_SIMPLE) < 0)
            break;
        held = i + 1;
        struct msghdr *h = &self->msgs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        self->iov[i].iov_base = self->views[i].buf;
        self->iov[i].iov_len = self->views[i].len;
        h->msg_iov = &self->iov[i];
        h->msg_iovlen = 1;
    }
    int n = 0, saved = 0;
    if (held == total && total) {
        Py_BEGIN_ALLOW_THREADS
        n = sendmmsg(self->fd, self->msgs, (unsigned int)held, MSG_DONTWAIT);
        Py_END_ALLOW_THREADS
        saved = errno;
    }
    for (i = 0; i < held; i++)
        PyBuffer_Release(&self->views[i]);
    Py_DECREF(seq);
    if (held != total)
        return NULL; /* not bytes-like: GetBuffer's TypeError */
    if (n < 0) {
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(n);
}

/*
 * departures(payload_len) -> list: the messages waiting on the error queue, up to count, each
 * as (sequence number, POSIX ns) for a software TX timestamp of a test packet, (None, None)
 * for anything else (an ICMP error, a truncated one).  The kernel hands each stamp back with the
 * packet it stamps (no OPT_TSONLY): a UDP datagram whose payload, payload_len octets, is the
 * test packet, whose first four are its Sequence Number (RFC 8762, both modes).  So a stamp
 * names its packet, whatever sends failed on the way.  One recvmmsg(MSG_ERRQUEUE) call; an
 * empty list when none is waiting.
 */
static PyObject *Batch_departures(Batch *self, PyObject *arg)
{
    Py_ssize_t tail = PyLong_AsSsize_t(arg);
    if (tail == -1 && PyErr_Occurred())
        return NULL;
    if (tail < 4 || (size_t)tail > self->bufsize) {
        PyErr_SetString(PyExc_ValueError, "payload_len must be 4..bufsize");
        return NULL;
    }
    unsigned int i;
    int n;
    for (i = 0; i < self->count; i++) {
        self->iov[i].iov_base = self->buffers + i * self->bufsize;
        self->iov[i].iov_len = self->bufsize;
        struct msghdr *h = &self->msgs[i].msg_hdr;
        memset(h, 0, sizeof *h);
        h->msg_iov = &self->iov[i];
        h->msg_iovlen = 1;
        h->msg_control = self->control + i * CONTROL_SPACE;
        h->msg_controllen = CONTROL_SPACE;
    }
    Py_BEGIN_ALLOW_THREADS
    n = recvmmsg(self->fd, self->msgs, self->count, MSG_ERRQUEUE | MSG_DONTWAIT, NULL);
    Py_END_ALLOW_THREADS
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (i = 0; i < (unsigned int)n; i++) {
        struct msghdr *h = &self->msgs[i].msg_hdr;
        size_t len = self->msgs[i].msg_len;
        long long ns = 0;
        int stamped = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
            if (((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
                 (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) &&
                c->cmsg_len >= CMSG_LEN(sizeof(struct sock_extended_err))) {
                struct sock_extended_err e;
                memcpy(&e, CMSG_DATA(c), sizeof e);
                stamped = e.ee_origin == SO_EE_ORIGIN_TIMESTAMPING && e.ee_errno == ENOMSG &&
                          e.ee_info == SCM_TSTAMP_SND;
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPING &&
                       c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
                struct timespec ts; /* [0] is the software stamp */
                memcpy(&ts, CMSG_DATA(c), sizeof ts);
                ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
            }
        }
        /* the test packet is the datagram's payload: the UDP header's Length, just before it, says so */
        const unsigned char *p = (const unsigned char *)self->iov[i].iov_base + (len - (size_t)tail);
        PyObject *item;
        if (!stamped || ns <= 0 || (h->msg_flags & MSG_TRUNC) || len < (size_t)tail + 8 ||
            ((size_t)p[-4] << 8 | p[-3]) != (size_t)tail + 8) {
            item = Py_BuildValue("(OO)", Py_None, Py_None); /* read, and not a stamp of a test packet */
        } else {
            unsigned long seq = (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
            item = Py_BuildValue("(kL)", seq, ns);
        }
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyMethodDef Batch_methods[] = {
    {"recv", (PyCFunction)Batch_recv, METH_NOARGS, "Read every waiting datagram (up to count) with its metadata."},
    {"send", (PyCFunction)Batch_send, METH_VARARGS, "Send replies in one sendmmsg call; returns how many left."},
    {"send_connected", (PyCFunction)Batch_send_connected, METH_O,
     "Send test packets on a connected socket in one sendmmsg call; returns how many left."},
    {"departures", (PyCFunction)Batch_departures, METH_O,
     "Read the waiting TX timestamps (sequence number, ns) from the error queue in one recvmmsg call."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "stamp_suite.net._mmsg.Batch",
    .tp_doc = "Buffers for recvmmsg/sendmmsg on one socket (not shared between threads).",
    .tp_basicsize = sizeof(Batch),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Batch_init,
    .tp_dealloc = (destructor)Batch_dealloc,
    .tp_methods = Batch_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mmsg", "recvmmsg/sendmmsg with per-datagram control messages (Linux).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__mmsg(void)
{
    if (PyType_Ready(&BatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&BatchType);
    if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(&BatchType);
        Py_DECREF(m);
        return NULL;
    }
    /* Raised with every change of what Python passes or gets (stamp_suite/net/udp.py checks
     * it): 2 = send() takes the replies as they are, with pin_source and per_packet_tos;
     * 3 = send_connected() and departures() for the Session-Sender. */
    if (PyModule_AddIntConstant(m, "API_VERSION", 3) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
