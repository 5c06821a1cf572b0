/* Independent STAMP load generator: keeps a window of open-mode test packets in flight
 * against a reflector and reports replies/s, loss and round-trip percentiles.
 * It shares no code with stamp-suite.  Build: cc -O2 -o loadgen loadgen.c -lm
 * Usage: loadgen HOST PORT COUNT WINDOW [PAYLOAD_SIZE] [SOURCE_PORTS] [SOURCE_ADDRESSES]
 * SOURCE_PORTS > 1 spreads the load over that many sockets (flows), round robin;
 * SOURCE_ADDRESSES > 1 (IPv4 loopback only) binds socket i to 127.0.0.(1 + i % N), as
 * that many sender hosts would. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXSOCK 64

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void fill(unsigned char *p, size_t len, uint32_t seq) {
    memset(p, 0, len);
    uint32_t s = htonl(seq);
    memcpy(p, &s, 4);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t sec = htonl((uint32_t)(ts.tv_sec + 2208988800u));
    uint32_t frac = htonl((uint32_t)(((uint64_t)ts.tv_nsec << 32) / 1000000000ull));
    memcpy(p + 4, &sec, 4);
    memcpy(p + 8, &frac, 4);
    p[12] = 0x00; p[13] = 0x01; /* Error Estimate: unsynchronised, multiplier 1 */
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s HOST PORT COUNT WINDOW [SIZE] [SOCKETS]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    long count = atol(argv[3]);
    int window = atoi(argv[4]);
    size_t size = argc > 5 ? (size_t)atoi(argv[5]) : 44;
    int nsock = argc > 6 ? atoi(argv[6]) : 1;
    int naddr = argc > 7 ? atoi(argv[7]) : 1;
    if (nsock < 1 || nsock > MAXSOCK || naddr < 1 || naddr > 250 || size < 44 || size > 1500) return 2;

    struct sockaddr_storage dst;
    socklen_t dlen;
    memset(&dst, 0, sizeof dst);
    int family = strchr(host, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&dst;
        a->sin_family = AF_INET; a->sin_port = htons(port); inet_pton(AF_INET, host, &a->sin_addr);
        dlen = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&dst;
        a->sin6_family = AF_INET6; a->sin6_port = htons(port); inet_pton(AF_INET6, host, &a->sin6_addr);
        dlen = sizeof *a;
    }
    int socks[MAXSOCK];
    struct pollfd pfd[MAXSOCK];
    for (int i = 0; i < nsock; i++) {
        socks[i] = socket(family, SOCK_DGRAM, 0);
        int buf = 4 << 20;
        setsockopt(socks[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        if (naddr > 1 && family == AF_INET) {
            struct sockaddr_in src = {.sin_family = AF_INET};
            src.sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)(i % naddr));
            if (bind(socks[i], (struct sockaddr *)&src, sizeof src) < 0) { perror("bind"); return 1; }
        }
        if (connect(socks[i], (struct sockaddr *)&dst, dlen) < 0) { perror("connect"); return 1; }
        pfd[i].fd = socks[i]; pfd[i].events = POLLIN;
    }
    uint64_t *sent_at = calloc(count, sizeof(uint64_t));
    uint64_t *rtts = calloc(count, sizeof(uint64_t));
    unsigned char *seen = calloc(count, 1);
    long sent = 0, received = 0, nrtt = 0;
    unsigned char pkt[1500], rbuf[BATCH][1536];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];

    uint64_t start = now_ns(), last_progress = start;
    while (sent < count && sent < window) {
        fill(pkt, size, (uint32_t)sent);
        sent_at[sent] = now_ns();
        if (send(socks[sent % nsock], pkt, size, 0) < 0 && errno != ECONNREFUSED) { perror("send"); return 1; }
        sent++;
    }
    while (received < count) {
        int r = poll(pfd, nsock, 200);
        if (r == 0) {  /* nothing for 200 ms: refill the window (losses), or finish */
            if (now_ns() - last_progress > 1000000000ull) break;
            long inflight = sent - received;
            while (sent < count && inflight < window) {
                fill(pkt, size, (uint32_t)sent);
                sent_at[sent] = now_ns();
                send(socks[sent % nsock], pkt, size, 0);
                sent++; inflight++;
            }
            continue;
        }
        for (int s = 0; s < nsock; s++) {
            if (!(pfd[s].revents & POLLIN)) continue;
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = rbuf[i]; iov[i].iov_len = sizeof rbuf[i];
                memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
                msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
            }
            int n = recvmmsg(socks[s], msgs, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0) continue;
            uint64_t t = now_ns();
            last_progress = t;
            for (int i = 0; i < n; i++) {
                if (msgs[i].msg_len < 28) continue;
                uint32_t seq;  /* the Session-Sender Sequence Number copied at octet 24 */
                memcpy(&seq, rbuf[i] + 24, 4);
                seq = ntohl(seq);
                if (seq >= (uint32_t)count || seen[seq]) continue;
                seen[seq] = 1;
                rtts[nrtt++] = t - sent_at[seq];
                received++;
                if (sent < count) {
                    fill(pkt, size, (uint32_t)sent);
                    sent_at[sent] = now_ns();
                    send(socks[sent % nsock], pkt, size, 0);
                    sent++;
                }
            }
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    qsort(rtts, nrtt, sizeof(uint64_t), cmp_u64);
    double p50 = nrtt ? rtts[(nrtt - 1) / 2] / 1e3 : 0, p99 = nrtt ? rtts[(long)((nrtt - 1) * 0.99)] / 1e3 : 0;
    printf("{\"sent\": %ld, \"received\": %ld, \"seconds\": %.6f, \"pps\": %.1f, \"loss\": %.6f, "
           "\"rtt_p50_us\": %.2f, \"rtt_p99_us\": %.2f}\n",
           sent, received, secs, received / secs, sent ? (double)(sent - received) / sent : 0.0, p50, p99);
    return 0;
}
