"""Per-client rate limits and token-use counting: at most one Redis round trip per request, often none.

Rate limit: a token bucket per API client (capacity = the per-minute limit,
refilled continuously), configurable per client and per tenant
(``apps.api.limits``). Token use: a counter per (client, audience, hour) with
the last IP and user agent, in a Redis hash per hour; a beat task
(``apps.api.tasks.flush_token_use``) moves the counts to the database in
batches, exactly once (see ``drain``), so a request never writes a row for being made. A busy client's
tokens are leased to a process a few at a time (see ``LEASE_MAX``), and its
use counts travel with the next lease, so most of its calls touch Redis not at all.

Why a small Lua script rather than a library: the bucket, its refill and the
usage counter must change together and atomically across processes, and the
answer must carry what the ``RateLimit``/``Retry-After`` headers need (tokens
left, time to the next token). ``limits`` (the well-kept choice) offers fixed
and sliding windows, not a token bucket, and reading its window state for the
headers is a second round trip; ``pyrate-limiter``'s Redis bucket is a leaky
bucket without a "time to next token" answer. The script is 20 lines and uses
Redis's own clock, so web processes with skewed clocks agree.

Redis is ``settings.API_REDIS_URL``. When Redis does not answer, the request is
let through (decisions matter more than the limiter; the error is logged once a
minute) and its use is not counted.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

logger = logging.getLogger(__name__)

_NS = getattr(settings, "REDIS_KEY_NAMESPACE", "bastion")  # see config/settings/base.py
BUCKET_PREFIX = f"{_NS}:api:bucket:"
USE_PREFIX = f"{_NS}:api:use:"
FLUSHING_PREFIX = f"{_NS}:api:use-flushing:"
# An hour's hash stays this long if no flush ever runs: a day of beat outage loses nothing.
USE_TTL_SECONDS = 2 * 24 * 3600
FIELD_SEP = "|"

# KEYS: bucket. ARGV: capacity, refill per second, tokens wanted.
# Takes up to the tokens wanted (as many as there are, whole ones only).
# Returns {tokens granted, whole tokens left, ms until the next token, ms until the bucket is full}.
_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = capacity; ts = now end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local granted = math.min(want, math.floor(tokens))
local wait = 0
if granted > 0 then
  tokens = tokens - granted
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {granted, math.floor(tokens), wait, math.ceil((capacity - tokens) * 1000 / rate)}
"""
# A process takes tokens from a busy client's bucket a few at a time (a lease) and spends them
# locally, so most calls make no Redis round trip for the limiter; the counts of use ride along with
# the next lease. The bucket never hands out more than its rate: a lease only moves tokens from
# Redis to one process. A lease covers at most a tenth of a second of the client's refill (so
# tokens stranded in an idle process are few) and lives at most LEASE_SECONDS.
LEASE_MAX = 20
LEASE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: ``per_minute`` requests on average, bursts of up to ``per_minute``."""

    per_minute: int
    source: str  # "client", "tenant" or "default": what the RateLimit-Policy names


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the bucket said: allowed or not, what is left, and when to come back."""

    allowed: bool
    limit: Limit
    remaining: int
    retry_after_s: int  # 0 when allowed
    reset_s: int  # seconds until the bucket is full again

    def headers(self) -> dict[str, str]:
        """IETF draft-ietf-httpapi-ratelimit-headers (structured fields), and Retry-After on a 429."""
        policy = f'"{self.limit.source}";q={self.limit.per_minute};w=60'
        state = f'"{self.limit.source}";r={self.remaining};t={self.reset_s}'
        headers = {"RateLimit-Policy": policy, "RateLimit": state}
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


@functools.cache
def client() -> redis.Redis:
    """One connection pool per process; short timeouts so a dead Redis cannot stall requests."""
    return redis.Redis.from_url(settings.API_REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


@functools.cache
def _script() -> redis.commands.core.Script:
    return client().register_script(_SCRIPT)


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs: object) -> None:
    if setting == "API_REDIS_URL":
        client.cache_clear()
        _script.cache_clear()


def hour_key(epoch_seconds: float | None = None) -> str:
    """The usage hash of the hour ``epoch_seconds`` falls in (UTC), e.g. ``bastion:api:use:2026120609``."""
    moment = epoch_seconds if epoch_seconds is not None else time.time()
    return USE_PREFIX + time.strftime("%Y%m%d%H", time.gmtime(moment))


def use_field(client_id: str, audience: str) -> str:
    return f"{client_id}{FIELD_SEP}{audience}"


@dataclass(slots=True)
class _Lease:
    left: int
    expires: float
    limit: Limit
    bucket_left: int
    reset_s: int


@dataclass(slots=True)
class _Pending:
    count: int = 0
    limited: int = 0
    ip: str = ""
    user_agent: str = ""


_leases: dict[str, _Lease] = {}
_pending: dict[tuple[str, str], _Pending] = {}  # (hour key, use field) -> uses not yet in Redis
_lock = threading.Lock()
_last_error_log = 0.0


def lease_size(limit: Limit) -> int:
    """Tokens one process takes at a time: a tenth of a second of refill, 1 to LEASE_MAX."""
    return max(1, min(LEASE_MAX, limit.per_minute // 600))


def _count(client_id: str, audience: str, ip: str, user_agent: str, *, limited: bool) -> None:
    pending = _pending.setdefault((hour_key(), use_field(client_id, audience)), _Pending())
    pending.count += 1
    pending.limited += int(limited)
    pending.ip, pending.user_agent = ip, user_agent[:256]


def take(*, client_id: str, audience: str, limit: Limit, ip: str, user_agent: str) -> Outcome:
    """Take one token from the client's bucket (from this process's lease when it has one) and count the use.

    At most one Redis round trip (a pipeline: the pending use counts, then the bucket). Fails open:
    when Redis does not answer, the request is allowed, and its use is kept for the next round trip.
    """
    global _last_error_log  # a per-process throttle for one log line
    now = time.monotonic()
    with _lock:
        _count(client_id, audience, ip, user_agent, limited=False)
        lease = _leases.get(client_id)
        if lease is not None and lease.left > 0 and lease.expires > now and lease.limit == limit:
            lease.left -= 1
            return Outcome(True, limit, lease.bucket_left + lease.left, 0, lease.reset_s)
        pending = dict(_pending)
        _pending.clear()
    try:
        pipe = client().pipeline(transaction=False)
        for (key, field), uses in pending.items():
            pipe.hincrby(key, field + "|n", uses.count)
            if uses.limited:
                pipe.hincrby(key, field + "|limited", uses.limited)
            pipe.hset(key, mapping={field + "|ip": uses.ip, field + "|ua": uses.user_agent})
            pipe.expire(key, USE_TTL_SECONDS)
        _script()(
            keys=[BUCKET_PREFIX + client_id],
            args=[limit.per_minute, limit.per_minute / 60.0, lease_size(limit)],
            client=pipe,
        )
        granted, bucket_left, wait_ms, full_ms = (int(v) for v in pipe.execute()[-1])
    except redis.RedisError:
        with _lock:
            for key, uses in pending.items():  # keep them for the next round trip
                mine = _pending.setdefault(key, _Pending())
                mine.count, mine.limited = mine.count + uses.count, mine.limited + uses.limited
                mine.ip, mine.user_agent = mine.ip or uses.ip, mine.user_agent or uses.user_agent
        if now - _last_error_log > 60:
            _last_error_log = now
            logger.exception("api rate limiter: Redis unavailable; requests pass unlimited and uncounted")
        return Outcome(True, limit, limit.per_minute, 0, 0)
    reset_s = math.ceil(full_ms / 1000)
    if granted == 0:
        with _lock:
            # The use itself was counted above; note that it was refused.
            _pending.setdefault((hour_key(), use_field(client_id, audience)), _Pending()).limited += 1
            _leases.pop(client_id, None)
        return Outcome(False, limit, 0, max(1, math.ceil(wait_ms / 1000)), reset_s)
    with _lock:
        _leases[client_id] = _Lease(granted - 1, now + LEASE_SECONDS, limit, bucket_left, reset_s)
    return Outcome(True, limit, bucket_left + granted - 1, 0, reset_s)


def forget_leases() -> None:
    """Drop this process's leases and unsent counts (tests)."""
    with _lock:
        _leases.clear()
        _pending.clear()


# --- moving the counts to the database ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UseRow:
    """One (client, audience, hour)'s use since the last flush, with the last IP and user agent seen."""

    client_id: str
    audience: str
    hour: str  # YYYYMMDDHH, UTC
    count: int
    limited: int  # of which refused by the rate limit
    last_ip: str
    last_user_agent: str


def _rows(hour: str, raw: dict[bytes, bytes]) -> list[UseRow]:
    fields = {key.decode(): value.decode(errors="replace") for key, value in raw.items()}
    rows = []
    for name, value in fields.items():
        if not name.endswith("|n"):
            continue
        base = name[:-2]
        client_id, _, audience = base.partition(FIELD_SEP)
        rows.append(
            UseRow(
                client_id=client_id,
                audience=audience,
                hour=hour,
                count=int(value),
                limited=int(fields.get(base + "|limited", 0)),
                last_ip=fields.get(base + "|ip", ""),
                last_user_agent=fields.get(base + "|ua", ""),
            )
        )
    return rows


def drain(write: Callable[[str, list[UseRow]], None]) -> int:
    """Hand every counted use to ``write(batch_id, rows)`` (one batch per hour hash); returns the number of rows.

    Each hash is first claimed by renaming it to a private, unique name (atomic:
    two flushers never claim the same counts; new uses start a fresh hash),
    then written, then deleted. The claim's name is the batch id, and the
    writer (``apps.keys.services.token_use_record``) records it in the same
    transaction as the counts and writes a batch id it has seen before not at
    all. So every count reaches the database exactly once:

    - a flush that dies after the claim and before the write leaves the
      private hash, which the next flush picks up first;
    - one that dies after the write's commit and before the delete leaves it
      too; the next flush hands it over again and the writer skips it;
    - two flushers on the same leftover claim: the second one's insert of the
      batch id waits for the first one's transaction and then skips.
    """
    r = client()
    written = 0
    pending = [key.decode() for key in r.scan_iter(match=FLUSHING_PREFIX + "*", count=500)]
    for key in r.scan_iter(match=USE_PREFIX + "*", count=500):
        name = key.decode()
        hour = name[len(USE_PREFIX) :]
        target = f"{FLUSHING_PREFIX}{hour}:{uuid.uuid4().hex}"
        try:
            r.rename(name, target)
        except redis.ResponseError:  # gone meanwhile (another flusher took it)
            continue
        pending.append(target)
    for target in pending:
        hour = target[len(FLUSHING_PREFIX) :].split(":", 1)[0]
        rows = _rows(hour, r.hgetall(target))
        if rows:
            write(target, rows)
            written += len(rows)
        r.delete(target)
    return written
