/* ftpload: a small FTP load generator for bench/benchmark.py.
 *
 * Runs many FTP sessions at once from one poll() loop, so the client costs far less
 * than the servers it measures. Each session: connect, USER/PASS, then K times
 * (TYPE I once) EPSV + RETR of a path, then QUIT. Sessions run `-c` at a time until
 * `-t` have ended. Prints one JSON object: sessions, errors, bytes, seconds and the
 * session completion times (p50, p99, max), each from when the session was due: the run's
 * start, or the end of the session before it in its slot (a session held back while
 * others wait for their greeting counts that wait).
 *
 *   ftpload -p PORT [-H 127.0.0.1] [-u anonymous] [-w pass] [-c 1] [-t 1]
 *           [-k 0] [-f PATH] [-i] [-s 1] [-a 127.0.0.1]
 *
 * -f PATH may hold one %d, numbered per RETR (f%04d: f0000, f0001, ...).
 * -k 0 only logs in and out: a login benchmark.
 * -i (idle): log -c sessions in and keep them; print "ready" once all are in, then for
 *    every line read on stdin run one fresh session (login, the RETRs, QUIT) and print
 *    its seconds; end every session at the end of stdin.
 * A session that gets nothing from the server for 30 s (but an idle one) has failed.
 * -s N: sessions come from N addresses in turn (127.0.0.1 to 127.0.0.N), as from N clients;
 * -a ADDR: the first of them (127.0.0.1). A failed login ends its session (a flood
 *    of wrong passwords: -w wrong -k 0 -t 1000000).
 *
 * Build: gcc -O2 -o ftpload ftpload.c (bench/benchmark.py does it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STALLED 30 /* seconds without a byte from the server: the session failed */

enum state { GREETING, USER, PASS, TYPE, EPSV, RETR, QUIT, IDLE, DONE };

struct session {
    int ctl, data;            /* sockets; -1 when closed */
    enum state state;
    char line[8192];          /* the reply being read */
    size_t used;
    int retrs;                /* RETRs finished */
    int got_226, data_eof;    /* a RETR ends with both */
    double started, active;   /* when it was due to begin, when it last got something */
    double due;               /* when the slot is free for its next session */
    int source;               /* which source address */
};

static const char *host = "127.0.0.1", *user = "anonymous", *password = "bench@",
                  *path = "file";
static int port, concurrency = 1, total = 1, retrs_each, idle, sources = 1;
static in_addr_t first_source = INADDR_LOOPBACK;
static int started_count, ended_count, errors, logged_in, last_failed;
static long long bytes;
static double *times;
static int times_used, times_size;
static struct session *sessions;
static char sink[1 << 18];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sessions come from 127.0.0.1, 127.0.0.2, ... (-s), as from that many clients; a data
 * connection from the same address as its control connection. */
static int connect_to(int to_port, int source) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(to_port)};
    struct sockaddr_in from = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    inet_pton(AF_INET, host, &addr.sin_addr);
    from.sin_addr.s_addr = htonl(first_source + source % sources);
    if (sources > 1 || first_source != INADDR_LOOPBACK) bind(fd, (struct sockaddr *)&from, sizeof from);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

static void say(struct session *s, enum state next, const char *fmt, const char *arg) {
    char out[1024];
    int n = snprintf(out, sizeof out, fmt, arg);
    if (write(s->ctl, out, n) != n) /* a few bytes into an empty socket buffer */
        s->state = DONE, errors++;
    else
        s->state = next;
}

static void end(struct session *s, int failed) {
    if (s->ctl >= 0) close(s->ctl);
    if (s->data >= 0) close(s->data);
    s->ctl = s->data = -1;
    s->state = DONE;
    s->due = now();
    errors += failed;
    ended_count++;
    last_failed = failed;
    if (!failed && times_used < times_size) times[times_used++] = now() - s->started;
}

/* A session's time counts from `due`, not from its connect: the server's slowness to
 * greet the sessions ahead of it (see CONNECTING) is part of its completion time. */
static void start(struct session *s, double due) {
    memset(s, 0, sizeof *s);
    s->data = -1;
    s->started = due;
    s->active = now();
    s->source = started_count;
    s->ctl = connect_to(port, s->source);
    s->state = GREETING;
    started_count++;
    if (s->ctl < 0) end(s, 1);
}

static void next_retr(struct session *s) {
    if (s->retrs < retrs_each)
        say(s, EPSV, "EPSV\r\n", "");
    else
        say(s, QUIT, "QUIT\r\n", "");
}

static void retr_maybe_done(struct session *s) {
    if (s->got_226 && s->data_eof) {
        s->retrs++;
        s->got_226 = s->data_eof = 0;
        next_retr(s);
    }
}

static void logged(struct session *s) {
    if (idle && s - sessions < concurrency) { /* one of the held sessions */
        s->state = IDLE;
        logged_in++;
    } else if (retrs_each == 0)
        say(s, QUIT, "QUIT\r\n", "");
    else
        say(s, TYPE, "TYPE I\r\n", "");
}

/* A complete final reply `code` (text in `text`) arrived on the control connection. */
static void reply(struct session *s, int code, const char *text) {
    char name[512];
    switch (s->state) {
    case GREETING:
        if (code != 220) break;
        say(s, USER, "USER %s\r\n", user);
        return;
    case USER:
        if (code == 230) { logged(s); return; }
        if (code != 331) break;
        say(s, PASS, "PASS %s\r\n", password);
        return;
    case PASS:
        if (code != 230) break;
        logged(s);
        return;
    case TYPE:
        if (code != 200) break;
        next_retr(s);
        return;
    case EPSV: {
        const char *bars = strstr(text, "(|||");
        if (code != 229 || !bars) break;
        s->data = connect_to(atoi(bars + 4), s->source);
        if (s->data < 0) break;
        snprintf(name, sizeof name, path, s->retrs);
        say(s, RETR, "RETR %s\r\n", name);
        return;
    }
    case RETR:
        if (code == 150 || code == 125) return;
        if (code != 226) break;
        s->got_226 = 1;
        retr_maybe_done(s);
        return;
    case QUIT:
        end(s, code != 221);
        return;
    default:
        break;
    }
    fprintf(stderr, "ftpload: unexpected reply in state %d: %s\n", s->state, text);
    end(s, 1);
}

static void read_control(struct session *s) {
    ssize_t n = read(s->ctl, s->line + s->used, sizeof s->line - 1 - s->used);
    s->active = now();
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN) return;
        end(s, s->state != QUIT);
        return;
    }
    s->used += n;
    char *eol;
    while (s->ctl >= 0 && (eol = memchr(s->line, '\n', s->used))) {
        *eol = '\0';
        size_t len = eol - s->line + 1;
        /* "226 text": a final reply; "226-text" and other lines continue one */
        if (len >= 5 && s->line[3] == ' ' && s->line[0] >= '1' && s->line[0] <= '5')
            reply(s, atoi(s->line), s->line);
        if (s->ctl < 0) return;
        memmove(s->line, eol + 1, s->used - len);
        s->used -= len;
    }
}

static void read_data(struct session *s) {
    ssize_t n;
    s->active = now();
    while ((n = read(s->data, sink, sizeof sink)) > 0) bytes += n;
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        close(s->data);
        s->data = -1;
        s->data_eof = 1;
        retr_maybe_done(s);
    }
}

/* Start sessions in free slots, but never more than CONNECTING at once waiting for
 * their greeting: a burst beyond the server's listen backlog would have connections
 * that the kernel dropped after the handshake wait for a greeting forever. */
#define CONNECTING 32
static void refill(int slots) {
    int greeting = 0;
    for (int i = 0; i < slots; i++) greeting += sessions[i].state == GREETING;
    for (int i = 0; i < concurrency && started_count < total && greeting < CONNECTING; i++)
        if (sessions[i].state == DONE && sessions[i].ctl < 0)
            start(&sessions[i], sessions[i].due), greeting++;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double q) {
    if (!times_used) return 0;
    int i = (int)(q * (times_used - 1) + 0.5);
    return times[i];
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "H:p:u:w:c:t:k:f:is:a:")) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'u': user = optarg; break;
        case 'w': password = optarg; break;
        case 'c': concurrency = atoi(optarg); break;
        case 't': total = atoi(optarg); break;
        case 'k': retrs_each = atoi(optarg); break;
        case 'f': path = optarg; break;
        case 'i': idle = 1; break;
        case 's': sources = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'a': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1) { fprintf(stderr, "ftpload: bad -a\n"); return 2; }
            first_source = ntohl(a.s_addr);
            break;
        }
        default: fprintf(stderr, "usage: see the comment at the top of ftpload.c\n"); return 2;
        }
    }
    if (!port || concurrency < 1) { fprintf(stderr, "ftpload: -p PORT is needed\n"); return 2; }
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max; /* two descriptors per session */
    setrlimit(RLIMIT_NOFILE, &files);

    int slots = concurrency + idle; /* with -i, one more slot for the probes */
    if (idle) total = concurrency;
    sessions = calloc(slots, sizeof *sessions);
    times_size = (total < (1 << 20) ? total : (1 << 20)) + 1024; /* -i's probes too */
    times = calloc(times_size, sizeof *times);
    struct pollfd *fds = calloc(2 * slots + 1, sizeof *fds);
    int *owner = calloc(2 * slots + 1, sizeof *owner);
    double begun = now();
    for (int i = 0; i < slots; i++)
        sessions[i].ctl = sessions[i].data = -1, sessions[i].state = DONE, sessions[i].due = begun;
    refill(slots);
    int probing = 0, announced = 0, stdin_open = idle, held = idle ? concurrency : 0;

    for (;;) {
        if (idle && !announced && logged_in + errors >= concurrency) { /* all in, or failed */
            printf("ready\n");
            fflush(stdout);
            announced = 1;
        }
        if (idle && !stdin_open && !probing && held) { /* the end: log the held ones out */
            for (int i = 0; i < concurrency; i++)
                if (sessions[i].state == IDLE) say(&sessions[i], QUIT, "QUIT\r\n", "");
            held = 0;
        }
        int open_sessions = 0;
        for (int i = 0; i < slots; i++) open_sessions += sessions[i].ctl >= 0;
        if (!open_sessions && (idle ? !stdin_open || !announced : started_count >= total))
            break;
        int n = 0;
        for (int i = 0; i < slots; i++) {
            struct session *s = &sessions[i];
            if (s->ctl >= 0) fds[n] = (struct pollfd){s->ctl, POLLIN, 0}, owner[n++] = i;
            if (s->data >= 0) fds[n] = (struct pollfd){s->data, POLLIN, 0}, owner[n++] = ~i;
        }
        if (stdin_open && announced && !probing)
            fds[n] = (struct pollfd){0, POLLIN, 0}, owner[n++] = slots;
        if (poll(fds, n, 1000) < 0 && errno != EINTR) { perror("poll"); return 1; }
        for (int i = 0; i < slots; i++) /* a session the server stopped answering */
            if (sessions[i].ctl >= 0 && sessions[i].state != IDLE &&
                now() - sessions[i].active > STALLED) {
                fprintf(stderr, "ftpload: no answer for %d s in state %d\n", STALLED,
                        sessions[i].state);
                end(&sessions[i], 1);
            }
        for (int j = 0; j < n; j++) {
            if (!fds[j].revents) continue;
            if (owner[j] == slots) { /* a probe request, or the end of the run */
                char request[64];
                if (fgets(request, sizeof request, stdin))
                    probing = 1, start(&sessions[concurrency], now());
                else
                    stdin_open = 0;
                continue;
            }
            struct session *s = &sessions[owner[j] < 0 ? ~owner[j] : owner[j]];
            if (owner[j] < 0 && s->data == fds[j].fd)
                read_data(s);
            else if (owner[j] >= 0 && s->ctl == fds[j].fd)
                read_control(s);
        }
        if (probing && sessions[concurrency].state == DONE) {
            printf("%.6f\n", last_failed ? -1.0 : times[times_used - 1]);
            fflush(stdout);
            probing = 0;
        }
        refill(slots);
    }
    double seconds = now() - begun;
    qsort(times, times_used, sizeof *times, compare);
    printf("{\"sessions\": %d, \"errors\": %d, \"bytes\": %lld, \"seconds\": %.6f, "
           "\"p50\": %.6f, \"p99\": %.6f, \"max\": %.6f}\n",
           ended_count, errors, bytes, seconds, quantile(0.5), quantile(0.99),
           times_used ? times[times_used - 1] : 0.0);
    return errors ? 1 : 0;
}
