/* Minimal C STAMP reflector (open mode, stateless, no TLV processing): the floor the
 * benchmark measures our reflector against.  recvmmsg/sendmmsg in batches of 64, the
 * base reply fields filled (T2, T3, copied sender fields, TTL 255).
 * Build: cc -O2 -o c_reflector c_reflector.c    Usage: c_reflector HOST PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64

static void ntp_now(unsigned char *p) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t sec = htonl((uint32_t)(ts.tv_sec + 2208988800u));
    uint32_t frac = htonl((uint32_t)(((uint64_t)ts.tv_nsec << 32) / 1000000000ull));
    memcpy(p, &sec, 4);
    memcpy(p + 4, &frac, 4);
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s HOST PORT\n", argv[0]); return 2; }
    int v6 = strchr(argv[1], ':') != NULL;
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
    int buf = 4 << 20;
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    struct sockaddr_storage a;
    memset(&a, 0, sizeof a);
    socklen_t alen;
    if (v6) {
        struct sockaddr_in6 *x = (struct sockaddr_in6 *)&a;
        x->sin6_family = AF_INET6; x->sin6_port = htons(atoi(argv[2])); inet_pton(AF_INET6, argv[1], &x->sin6_addr);
        alen = sizeof *x;
    } else {
        struct sockaddr_in *x = (struct sockaddr_in *)&a;
        x->sin_family = AF_INET; x->sin_port = htons(atoi(argv[2])); inet_pton(AF_INET, argv[1], &x->sin_addr);
        alen = sizeof *x;
    }
    if (bind(s, (struct sockaddr *)&a, alen) < 0) { perror("bind"); return 1; }
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    printf("c_reflector listening on port %d\n", ntohs(v6 ? ((struct sockaddr_in6 *)&a)->sin6_port
                                                            : ((struct sockaddr_in *)&a)->sin_port));
    fflush(stdout);
    static unsigned char in[BATCH][1536], out[BATCH][1536];
    struct mmsghdr rm[BATCH], sm[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    struct sockaddr_storage peers[BATCH];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            riov[i].iov_base = in[i]; riov[i].iov_len = sizeof in[i];
            memset(&rm[i].msg_hdr, 0, sizeof rm[i].msg_hdr);
            rm[i].msg_hdr.msg_iov = &riov[i]; rm[i].msg_hdr.msg_iovlen = 1;
            rm[i].msg_hdr.msg_name = &peers[i]; rm[i].msg_hdr.msg_namelen = sizeof peers[i];
        }
        int n = recvmmsg(s, rm, BATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) continue;
        for (int i = 0; i < n; i++) {
            size_t len = rm[i].msg_len < 44 ? 44 : rm[i].msg_len;
            unsigned char *q = out[i], *p = in[i];
            if (rm[i].msg_len < 44) memset(p + rm[i].msg_len, 0, 44 - rm[i].msg_len);
            memcpy(q + 44, p + 44, len - 44);
            memcpy(q, p, 4);                 /* sequence number (stateless) */
            ntp_now(q + 16);                 /* T2 */
            memcpy(q + 24, p, 14);           /* sender seq, timestamp, error estimate */
            memset(q + 38, 0, 6); q[40] = 255;
            q[12] = 0x00; q[13] = 0x01; q[14] = p[14]; q[15] = p[15];
            ntp_now(q + 4);                  /* T3 */
            siov[i].iov_base = q; siov[i].iov_len = len;
            memset(&sm[i].msg_hdr, 0, sizeof sm[i].msg_hdr);
            sm[i].msg_hdr.msg_iov = &siov[i]; sm[i].msg_hdr.msg_iovlen = 1;
            sm[i].msg_hdr.msg_name = &peers[i]; sm[i].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
        }
        sendmmsg(s, sm, n, 0);
    }
}
