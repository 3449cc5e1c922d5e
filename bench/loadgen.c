/*
 * The round-trip load generator of bench/scale.py, in C.
 *
 * It does what `node loadgen.js rtt` does (same frames, same closed loop,
 * same JSON lines on stdout) for a tenth of the CPU. That matters where the
 * load generator shares the machine's cores with the servers it measures:
 * with `workers = 2` on a 2-core machine, every cycle it spends is a cycle a
 * worker waits for. bench/run.py pins its servers to one core and the load
 * generator to the other, and keeps the Node.js one.
 *
 * Every client is a bare TCP socket: an HTTP upgrade, then WebSocket frames
 * built by hand (client frames masked with a zero key, which leaves the
 * payload as it is; server frames unmasked), carrying Engine.IO v4 /
 * Socket.IO v5 text packets:
 *
 *   open   GET /socketio/?EIO=4&transport=websocket -> "0{...}"
 *   join   "40/pingpong,"                          -> "40/pingpong,{...}"
 *   ping   '42/pingpong,["ping",{"type":"ping"}]'  -> '42/pingpong,["pong",...]'
 *   keep-alive: the server's "2" is answered with "3"
 *
 * Usage: loadgen rtt URL CLIENTS WARMUP_SECONDS SECONDS
 *   URL: ws://HOST:PORT/PATH?QUERY (an IPv4 address for HOST)
 *
 * Built by bench/scale.py with the system's C compiler (cc -O2).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NAMESPACE "/pingpong"
#define JOIN "40" NAMESPACE ","
#define PING "42" NAMESPACE ",[\"ping\",{\"type\":\"ping\"}]"
#define PONG_PREFIX "42" NAMESPACE ",[\"pong\""
#define READ_BUFFER 65536
#define HANDSHAKE_TIMEOUT_SECONDS 10

struct client {
    int fd;
    double sent_at;  /* monotonic seconds of the ping in flight */
    size_t pending;  /* bytes of an incomplete frame kept at the buffer's start */
    unsigned char buffer[READ_BUFFER];
};

struct frame {
    unsigned char bytes[6 + 125];
    size_t length;
};

static struct frame ping_frame, join_frame, keepalive_frame;

static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    exit(1);
}

static double now(void) {
    struct timespec clock;
    clock_gettime(CLOCK_MONOTONIC, &clock);
    return clock.tv_sec + clock.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

/* FIN + text opcode, MASK + length, four zero key bytes, the payload. */
static void text_frame(struct frame *frame, const char *text) {
    size_t length = strlen(text);
    if (length > 125) fail("frame too long: %s", text);
    frame->bytes[0] = 0x81;
    frame->bytes[1] = 0x80 | (unsigned char)length;
    memset(frame->bytes + 2, 0, 4);
    memcpy(frame->bytes + 6, text, length);
    frame->length = 6 + length;
}

static void send_frame(struct client *client, const struct frame *frame) {
    ssize_t sent = send(client->fd, frame->bytes, frame->length, MSG_NOSIGNAL);
    /* one small frame in flight per client: the socket buffer is never full */
    if (sent != (ssize_t)frame->length)
        fail("send: %s", sent < 0 ? strerror(errno) : "short write");
}

/*
 * Parse the frames in the client's buffer, calling on_text for each text
 * payload; keep an incomplete frame for the next read.
 */
typedef void (*text_handler)(struct client *, const unsigned char *, size_t);

static void parse_frames(struct client *client, size_t filled, text_handler on_text) {
    size_t offset = 0;
    while (filled - offset >= 2) {
        const unsigned char *frame = client->buffer + offset;
        unsigned opcode = frame[0] & 0x0f;
        uint64_t length = frame[1] & 0x7f;
        size_t header = 2;
        if (length == 126) {
            if (filled - offset < 4) break;
            length = ((uint64_t)frame[2] << 8) | frame[3];
            header = 4;
        } else if (length == 127) {
            if (filled - offset < 10) break;
            length = 0;
            for (int i = 0; i < 8; i++) length = (length << 8) | frame[2 + i];
            header = 10;
        }
        if (header + length > READ_BUFFER) fail("a server frame of %llu bytes", (unsigned long long)length);
        if (filled - offset < header + length) break;
        if (opcode == 0x1) on_text(client, frame + header, (size_t)length);
        else if (opcode == 0x8) fail("the server closed a connection");
        offset += header + length;
    }
    client->pending = filled - offset;
    if (client->pending && offset) memmove(client->buffer, client->buffer + offset, client->pending);
}

static int starts_with(const unsigned char *payload, size_t length, const char *prefix) {
    size_t prefix_length = strlen(prefix);
    return length >= prefix_length && memcmp(payload, prefix, prefix_length) == 0;
}

/* -- joining ------------------------------------------------------------- */

static int joined;

static void on_handshake_text(struct client *client, const unsigned char *payload, size_t length) {
    if (length == 1 && payload[0] == '2') send_frame(client, &keepalive_frame);
    else if (starts_with(payload, length, JOIN)) joined = 1;
    else if (length && payload[0] == '0') send_frame(client, &join_frame);
    else if (starts_with(payload, length, "44" NAMESPACE))
        fail("namespace refused: %.*s", (int)length, payload);
}

static void parse_url(const char *url, struct sockaddr_in *address, char *host, size_t host_size,
                      const char **target) {
    const char *rest;
    if (strncmp(url, "ws://", 5) != 0) fail("not a ws:// URL: %s", url);
    rest = url + 5;
    *target = strchr(rest, '/');
    if (!*target) fail("no path in %s", url);
    if ((size_t)(*target - rest) >= host_size) fail("host too long in %s", url);
    memcpy(host, rest, *target - rest);
    host[*target - rest] = '\0';
    char *colon = strchr(host, ':');
    if (!colon) fail("no port in %s", url);
    *colon = '\0';
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &address->sin_addr) != 1) fail("not an IPv4 address: %s", host);
    *colon = ':';
}

/* Connect, upgrade and join the namespace, blocking; then go non-blocking. */
static void open_client(struct client *client, const char *url) {
    struct sockaddr_in address;
    char host[256], request[1024];
    const char *target;
    int one = 1;
    struct timeval timeout = {HANDSHAKE_TIMEOUT_SECONDS, 0};

    parse_url(url, &address, host, sizeof host, &target);
    client->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (client->fd < 0) fail("socket: %s", strerror(errno));
    setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(client->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (connect(client->fd, (struct sockaddr *)&address, sizeof address) < 0)
        fail("connect: %s", strerror(errno));
    int length = snprintf(request, sizeof request,
                          "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: bG9hZGdlbiBjbGllbnQgMQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n",
                          target, host);
    if (send(client->fd, request, length, MSG_NOSIGNAL) != length) fail("send: %s", strerror(errno));

    size_t filled = 0;
    unsigned char *end = NULL;
    while (!end) {
        ssize_t got = recv(client->fd, client->buffer + filled, READ_BUFFER - 1 - filled, 0);
        if (got <= 0) fail("upgrade: %s", got < 0 ? strerror(errno) : "connection closed");
        filled += got;
        client->buffer[filled] = '\0';
        end = (unsigned char *)strstr((char *)client->buffer, "\r\n\r\n");
    }
    if (strncmp((char *)client->buffer, "HTTP/1.1 101 ", 13) != 0)
        fail("upgrade refused: %.*s", (int)strcspn((char *)client->buffer, "\r"), client->buffer);
    size_t rest = filled - (end + 4 - client->buffer);
    memmove(client->buffer, end + 4, rest);

    joined = 0;
    parse_frames(client, rest, on_handshake_text);
    while (!joined) {
        ssize_t got = recv(client->fd, client->buffer + client->pending, READ_BUFFER - client->pending, 0);
        if (got <= 0) fail("joining %s: %s", NAMESPACE, got < 0 ? strerror(errno) : "connection closed");
        parse_frames(client, client->pending + got, on_handshake_text);
    }
    timeout.tv_sec = 0;
    setsockopt(client->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

/* -- the closed loop ----------------------------------------------------- */

static int measuring;
static double *latencies;
static size_t latency_count, latency_capacity;

static void on_loop_text(struct client *client, const unsigned char *payload, size_t length) {
    if (starts_with(payload, length, PONG_PREFIX)) {
        double at = now();
        if (measuring) {
            if (latency_count == latency_capacity) {
                latency_capacity = latency_capacity ? 2 * latency_capacity : 1 << 16;
                latencies = realloc(latencies, latency_capacity * sizeof *latencies);
                if (!latencies) fail("out of memory");
            }
            latencies[latency_count++] = (at - client->sent_at) * 1000;
        }
        client->sent_at = at;
        send_frame(client, &ping_frame);
    } else if (length == 1 && payload[0] == '2') {
        send_frame(client, &keepalive_frame);
    }
}

static void run_until(int poller, double deadline) {
    struct epoll_event events[256];
    for (;;) {
        double left = deadline - now();
        if (left <= 0) return;
        int ready = epoll_wait(poller, events, 256, (int)ceil(left * 1000));
        if (ready < 0 && errno != EINTR) fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < ready; i++) {
            struct client *client = events[i].data.ptr;
            ssize_t got = recv(client->fd, client->buffer + client->pending,
                               READ_BUFFER - client->pending, MSG_DONTWAIT);
            if (got == 0) fail("the server closed a connection");
            if (got < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                fail("recv: %s", strerror(errno));
            }
            parse_frames(client, client->pending + got, on_loop_text);
        }
    }
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* As loadgen.js computes it: the smallest value with `fraction` at or below. */
static double percentile(const double *sorted, size_t count, double fraction) {
    long index = (long)ceil(fraction * count) - 1;
    if (index > (long)count - 1) index = (long)count - 1;
    if (index < 0) index = 0;
    return sorted[index];
}

int main(int argc, char **argv) {
    if (argc != 6 || strcmp(argv[1], "rtt") != 0)
        fail("usage: loadgen rtt URL CLIENTS WARMUP_SECONDS SECONDS");
    const char *url = argv[2];
    int count = atoi(argv[3]);
    double warmup = atof(argv[4]), seconds = atof(argv[5]);
    if (count < 1) fail("CLIENTS must be at least 1");

    text_frame(&ping_frame, PING);
    text_frame(&join_frame, JOIN);
    text_frame(&keepalive_frame, "3");

    struct client *clients = calloc(count, sizeof *clients);
    if (!clients) fail("out of memory");
    int poller = epoll_create1(0);
    for (int i = 0; i < count; i++) {
        open_client(&clients[i], url);
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &clients[i]};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, clients[i].fd, &event) < 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    for (int i = 0; i < count; i++) {
        clients[i].sent_at = now();
        send_frame(&clients[i], &ping_frame);
    }
    run_until(poller, now() + warmup);

    measuring = 1;
    printf("{\"event\":\"measuring\"}\n");
    fflush(stdout);
    double cpu_start = cpu_seconds(), start = now();
    run_until(poller, start + seconds);
    measuring = 0;
    double elapsed = now() - start, cpu = cpu_seconds() - cpu_start;

    qsort(latencies, latency_count, sizeof *latencies, compare_doubles);
    printf("{\"event\":\"result\",\"clients\":%d,\"seconds\":%.6f,\"round_trips\":%zu,"
           "\"rate\":%.3f,\"p50_ms\":%.6f,\"p99_ms\":%.6f,\"cpu_percent\":%.3f}\n",
           count, elapsed, latency_count, latency_count / elapsed,
           latency_count ? percentile(latencies, latency_count, 0.5) : 0.0,
           latency_count ? percentile(latencies, latency_count, 0.99) : 0.0, 100 * cpu / elapsed);
    fflush(stdout);
    for (int i = 0; i < count; i++) close(clients[i].fd);
    return 0;
}
