#!/usr/bin/env python3
"""Writes the hand-made seeds of the `job` and `job_set` fuzz targets, in the script encoding
their docs and `fuzz_targets/script.rs` describe: `python3 fuzz/seeds/machines.py`."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

def policy(min_=0, max_mult=9, fj=0x11, backoff=20, limits=0x87, timeout=600, ra_max=60):
    """`script::policy`: min 100 ms + 20 ms a step, max = min x (1 + n % 16), age fraction
    and jitter nibbles, backoff 100 ms + 20 ms a step, limits (errors, backoff cap, connect
    attempts), timeout in 100 ms (0 for none), Retry-After cap 1 s + 60 s a step."""
    return [min_, max_mult, fj, backoff, limits, timeout & 0xff, timeout >> 8, ra_max]

def resp(status=0, ra=0, date=0, body=0):
    """`script::response`: status index, Retry-After, Date, body."""
    return [status, ra, date, body]

OK, R202, R429, R502, R503 = 0, 7, 15, 17, 18
PROCESSING, COMPLETED, FAILED, CREATED, PAGE, LASTPAGE, ERRLAST, APIERR, HTML, EMPTY, RAW = \
    0, 2, 3, 5, 7, 9, 10, 12, 13, 14, 15
def secs(k): return 2 | (k << 3)       # Retry-After: k (seconds)
def ra_date(n): return 4 | (n << 3)    # Retry-After: an HTTP-date n x 10 - 60 s from now
def tok(body, t): return body | (t << 5)
def jump_ms(ms): n = ms // 10; return [0, n & 0xff, n >> 8, 2]
def jump_s(s): return [0, s & 0xff, s >> 8, 1]
def back_ms(ms): return [0, ms & 0xff, ms >> 8, 0]
POLL, SLEEP, RESTORE = [1], [5], [6]

# The `job` target's moves.
def answer(*r): return [2, *resp(*r)]
def fail(kind=2): return [3, kind]
def stale(pick=0, r=(0, 0, 0, 0), kind=3): return [4, pick, *resp(*r), kind]
def cycle(*r): return SLEEP + POLL + answer(*r)

job = {
    # create, wait (a FAILED job), every page: the whole import.
    "seed-import-failed": [7, 1] + policy() + POLL + answer(OK, 0, 1, CREATED)
        + cycle(OK, 0, 0, PROCESSING) + cycle(OK, 0, 0, FAILED) + POLL + answer(OK, 0, 0, tok(PAGE, 1))
        + POLL + answer(OK, 0, 0, LASTPAGE) + POLL + answer(OK, 0, 0, ERRLAST) + POLL,
    # wait: Retry-After in seconds and as a date (with Date), a transport failure, COMPLETED.
    "seed-retry-after": [0, 2] + policy() + POLL + answer(R503, secs(3), 1, APIERR) + SLEEP + POLL
        + answer(R429, ra_date(9), 2, APIERR) + SLEEP + POLL + fail(2) + cycle(OK, 0, 0, PROCESSING)
        + cycle(OK, 0, 0, COMPLETED),
    # a short deadline (2 s) met while a request is out.
    "seed-deadline": [0, 3] + policy(timeout=20) + POLL + answer(OK, 0, 0, PROCESSING) + SLEEP + POLL
        + jump_ms(2500) + POLL + SLEEP,
    # create, save/restore with the create out and after, a stale 429, the clock set back, 202s.
    "seed-restore": [3, 4] + policy() + POLL + RESTORE + POLL + answer(OK, 0, 0, CREATED) + RESTORE
        + stale(0, (R429, secs(30), 0, APIERR)) + back_ms(3000) + SLEEP + POLL + answer(R202, 0, 0, EMPTY)
        + cycle(OK, 0, 0, COMPLETED) + POLL + answer(R202, 0, 0, EMPTY) + cycle(OK, 0, 0, LASTPAGE),
    # a page token that repeats: a broken contract ends the read.
    "seed-repeated-token": [2, 5] + policy() + POLL + answer(OK, 0, 0, COMPLETED)
        + POLL + answer(OK, 0, 0, tok(PAGE, 2)) + POLL + answer(OK, 0, 0, tok(PAGE, 2)) + POLL,
    # errors in a row up to the limit (3): an HTML 502, an empty 200, a reset.
    "seed-error-limit": [1, 6] + policy(limits=0x02) + POLL + answer(R502, 0, 0, HTML) + SLEEP + POLL
        + answer(OK, 0, 0, EMPTY) + SLEEP + POLL + fail(3) + SLEEP + POLL,
    # an arbitrary body (32 bytes), then a Retry-After date an hour on, cut to its 1 s cap.
    "seed-raw-body": [0, 7] + policy(ra_max=0) + POLL + answer(OK, 0, 0, tok(RAW, 2))
        + list(b'{"job":{"id":"j=","status":"COMP') + SLEEP + POLL + answer(R503, 7 | (5 << 3), 3, APIERR)
        + jump_s(3600) + SLEEP + POLL + answer(OK, 0, 0, COMPLETED),
}

# The `job_set` target's header and moves.
def set_header(flags, jobs, policy_bytes, rate=16, burst=3, seed=9):
    return [flags, jobs, seed] + policy_bytes + [rate, burst]
def sanswer(pick, *r): return [2, pick, *resp(*r)]
def sfail(pick, kind=2): return [3, pick, kind]
def sstale(pick=0, r=(0, 0, 0, 0), kind=3): return [4, pick, *resp(*r), kind]
def add(create=False, refuse=False): return [7, int(create) | (int(refuse) << 1)]

job_set = {
    # 4 jobs (0 and 2 creates), pages All, a budget of 4.5/s in bursts of 3, 2 in progress.
    "seed-budget-cap": set_header(3 | 4 | (2 << 3), 3 | (0b101 << 3), policy()) + POLL
        + sanswer(0, OK, 0, 0, CREATED) + sanswer(0, OK, 0, 0, PROCESSING) + SLEEP + POLL
        + sanswer(0, OK, 0, 0, FAILED) + sanswer(0, OK, 0, 0, COMPLETED) + POLL
        + sanswer(1, OK, 0, 0, LASTPAGE) + sanswer(0, OK, 0, 0, LASTPAGE) + POLL
        + sanswer(0, OK, 0, 0, ERRLAST) + SLEEP + POLL + sanswer(0, OK, 0, 0, CREATED) + SLEEP + POLL
        + sanswer(0, OK, 0, 0, COMPLETED) + POLL,
    # 3 waits: a 429 with Retry-After on one holds all, a stale 503, then each one ends.
    "seed-429-holds-all": set_header(0, 2, policy()) + POLL + sanswer(1, R429, secs(5), 1, APIERR)
        + sanswer(0, OK, 0, 0, PROCESSING) + SLEEP + POLL + sstale(0, (R503, secs(1), 0, APIERR))
        + SLEEP + POLL + sanswer(0, OK, 0, 0, COMPLETED) + sanswer(0, OK, 0, 0, COMPLETED)
        + sanswer(0, OK, 0, 0, COMPLETED),
    # no server: connections refused from the start stop every job (1 connect attempt).
    "seed-unreachable": set_header(0, 2 | (0b111 << 3), policy(limits=0x07)) + POLL + sfail(0, 0) + POLL,
    # save/restore with requests out, jobs added on the way, the input refused, a 5 s deadline.
    "seed-restore-add": set_header(1 | (1 << 3), 1 | (0b01 << 3), policy(timeout=50)) + POLL + RESTORE
        + add(True) + POLL + sanswer(0, OK, 0, 0, CREATED) + add(False, True) + RESTORE + back_ms(500)
        + SLEEP + POLL + sanswer(0, OK, 0, 0, PROCESSING) + jump_ms(4000) + SLEEP + POLL + sfail(0, 2)
        + SLEEP + POLL + SLEEP + POLL,
}

for target, seeds in (("job", job), ("job_set", job_set)):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(HERE, target, name), "wb") as f:
            f.write(bytes(data))
