/* Small UDP blaster for the flow capture benchmark.
 *
 *   sendmmsg DST_IP DST_PORT SECONDS [PAYLOAD=18] [FLOWS=100] [PPS=0]
 *
 * Sends PAYLOAD-byte UDP datagrams (18 bytes -> 60-byte Ethernet frames) to
 * DST_IP:DST_PORT for SECONDS seconds in sendmmsg() batches of 64, spreading
 * them over FLOWS source ports (one socket per flow, 10000 + i).  PPS > 0
 * caps the rate.  Prints "sent N packets in T s (R pps)" at the end.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAXFLOWS 1024

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s DST_IP DST_PORT SECONDS [PAYLOAD] [FLOWS] [PPS]\n", argv[0]);
        return 2;
    }
    int payload = argc > 4 ? atoi(argv[4]) : 18;
    int flows = argc > 5 ? atoi(argv[5]) : 100;
    long pps = argc > 6 ? atol(argv[6]) : 0;
    double seconds = atof(argv[3]);
    if (flows < 1 || flows > MAXFLOWS || payload < 0 || payload > 1400 || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    struct sockaddr_in dst = {0};
    dst.sin_family = AF_INET;
    dst.sin_port = htons(atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad address %s\n", argv[1]);
        return 2;
    }
    int socks[MAXFLOWS];
    for (int i = 0; i < flows; i++) {
        socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
        if (socks[i] < 0) { perror("socket"); return 1; }
        struct sockaddr_in src = {0};
        src.sin_family = AF_INET;
        src.sin_port = htons(10000 + i);
        if (bind(socks[i], (struct sockaddr *)&src, sizeof(src)) < 0) { perror("bind"); return 1; }
        if (connect(socks[i], (struct sockaddr *)&dst, sizeof(dst)) < 0) { perror("connect"); return 1; }
    }
    char buf[1500];
    memset(buf, 'u', sizeof(buf));
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = buf;
        iov[i].iov_len = payload;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    double start = now(), end = start + seconds;
    unsigned long long sent = 0;
    int f = 0;
    while (1) {
        double t = now();
        if (t >= end) break;
        if (pps > 0 && sent > (t - start) * pps) { usleep(100); continue; }
        int n = sendmmsg(socks[f], msgs, BATCH, 0);
        if (n > 0) sent += n;
        f = (f + 1) % flows;
    }
    double el = now() - start;
    printf("sent %llu packets in %.3f s (%.0f pps)\n", sent, el, sent / el);
    return 0;
}
