"""Budget counters in Redis: spend, holds and a cost-per-minute bucket, changed atomically by one Lua script.

Why Redis and Lua: the budget check sits on the request path of every usage
report, guard call and reservation. Each budget has, per calendar month (UTC),

- ``spent``: money counted against it (micro-units of the currency, integers),
- holds: reservations not yet settled, released or expired (a sorted set of
  reservation ids by expiry, and their amounts), with their sum in ``reserved``,

and, when it has a per-minute throttle, a token bucket whose tokens are money
(capacity = the per-minute amount, refilled continuously). A charge fits a
budget when ``spent + reserved + amount <= limit`` and the bucket holds the
amount (or is full). Every operation first drops the holds whose time is up
(so an expired reservation frees its money even if no worker ever ran), then
checks every budget that applies and changes all of them or none, in one
script: concurrent requests in any number of processes can never together pass
a limit. One round trip per request (a whole usage batch is one call). The
clock is Redis's own (``TIME``), so web processes with skewed clocks agree.

The database is the record (``UsageEvent``, ``Reservation``); these counters
are a fast copy that ``apps.billing.budgets.budgets_reconcile`` checks and
repairs from it (``set_spent`` only when the counter did not move meanwhile).
When Redis does not answer, ``LedgerUnavailableError`` is raised and the caller
refuses (a 503): money is never let through unchecked.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import redis
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

# The Redis namespace (REDIS_KEY_NAMESPACE; tests give each xdist worker its own, since its budget ids
# start at 1 like every other worker's).
PREFIX = f"{getattr(settings, 'REDIS_KEY_NAMESPACE', 'bastion')}:budget:"
MICROS = Decimal(1_000_000)
KEY_TTL_SECONDS = 45 * 24 * 3600  # a month's counters outlive the month by two weeks (reconciliation reads them)

# Reasons a charge does not fit one budget.
FITS, OVER_LIMIT, THROTTLED, GONE = 0, 1, 2, -1

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local n = tonumber(ARGV[2])
local limits, rates, spent, reserved, tokens = {}, {}, {}, {}, {}
for i = 1, n do
  limits[i] = tonumber(ARGV[1 + 2 * i])
  rates[i] = tonumber(ARGV[2 + 2 * i])
end
local a = 3 + 2 * n
for i = 1, n do
  local ck, hk, ak, bk = KEYS[4 * i - 3], KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local expired = redis.call('ZRANGEBYSCORE', hk, '-inf', now)
  if #expired > 0 then
    local freed = 0
    for _, id in ipairs(expired) do
      freed = freed + (tonumber(redis.call('HGET', ak, id)) or 0)
      redis.call('HDEL', ak, id)
      redis.call('ZREM', hk, id)
    end
    redis.call('HINCRBY', ck, 'reserved', string.format('%.0f', -freed))
  end
  local st = redis.call('HMGET', ck, 'spent', 'reserved')
  spent[i] = tonumber(st[1]) or 0
  reserved[i] = tonumber(st[2]) or 0
  if rates[i] > 0 then
    local b = redis.call('HMGET', bk, 'tokens', 'ts')
    local tok, ts = tonumber(b[1]), tonumber(b[2])
    if tok == nil or ts == nil then tok = rates[i]; ts = now end
    tokens[i] = math.min(rates[i], tok + math.max(0, now - ts) * rates[i] / 60000)
  end
end
local function fits(i, amount)
  if spent[i] + reserved[i] + amount > limits[i] then return 1 end
  if rates[i] > 0 and tokens[i] < amount and tokens[i] < rates[i] then return 2 end
  return 0
end
local function check(amount, idx)
  for _, i in ipairs(idx) do
    local code = fits(i, amount)
    if code > 0 then return i * 10 + code end
  end
  return 0
end
local function take(amount, idx)
  for _, i in ipairs(idx) do
    spent[i] = spent[i] + amount
    if rates[i] > 0 then tokens[i] = tokens[i] - amount end
  end
end
local function save(touch_buckets)
  for i = 1, n do
    local ck, bk = KEYS[4 * i - 3], KEYS[4 * i]
    redis.call('HSET', ck, 'spent', string.format('%.0f', spent[i]), 'reserved', string.format('%.0f', reserved[i]))
    redis.call('EXPIRE', ck, TTL)
    if touch_buckets and rates[i] > 0 then
      redis.call('HSET', bk, 'tokens', tostring(tokens[i]), 'ts', now)
      redis.call('PEXPIRE', bk, 120000)
    end
  end
end
local function read_idx(pos)
  local k = tonumber(ARGV[pos])
  local idx = {}
  for j = 1, k do idx[j] = tonumber(ARGV[pos + j]) end
  return idx, pos + k + 1
end
local function report(out)
  for i = 1, n do
    out[#out + 1] = spent[i]
    out[#out + 1] = reserved[i]
  end
  return out
end
if op == 'charge' then
  local m = tonumber(ARGV[a])
  local pos = a + 1
  local out = {}
  local first = {}
  for i = 1, n do first[i] = spent[i] end
  for j = 1, m do
    local amount = tonumber(ARGV[pos])
    local idx
    idx, pos = read_idx(pos + 1)
    local code = check(amount, idx)
    if code == 0 then take(amount, idx) end
    out[j] = code
  end
  save(true)
  for i = 1, n do out[#out + 1] = first[i] end
  return report(out)
elseif op == 'check' then
  local amount = tonumber(ARGV[a])
  local idx = read_idx(a + 1)
  return report({check(amount, idx)})
elseif op == 'reserve' then
  local id, expiry, amount = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local idx = read_idx(a + 3)
  local code = check(amount, idx)
  if code == 0 then
    for _, i in ipairs(idx) do
      reserved[i] = reserved[i] + amount
      if rates[i] > 0 then tokens[i] = tokens[i] - amount end
      redis.call('ZADD', KEYS[4 * i - 2], expiry, id)
      redis.call('HSET', KEYS[4 * i - 1], id, string.format('%.0f', amount))
      redis.call('EXPIRE', KEYS[4 * i - 2], TTL)
      redis.call('EXPIRE', KEYS[4 * i - 1], TTL)
    end
    save(true)
  end
  return report({code})
elseif op == 'finish' then
  local id, actual = ARGV[a], tonumber(ARGV[a + 1])
  if n == 0 or redis.call('HEXISTS', KEYS[3], id) == 0 then return report({-1}) end
  for i = 1, n do
    local held = tonumber(redis.call('HGET', KEYS[4 * i - 1], id)) or 0
    redis.call('HDEL', KEYS[4 * i - 1], id)
    redis.call('ZREM', KEYS[4 * i - 2], id)
    reserved[i] = reserved[i] - held
    spent[i] = spent[i] + actual
  end
  save(false)
  return report({0})
elseif op == 'restore' then
  local id, expiry, amount = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local restored = 0
  if expiry > now then
    for i = 1, n do
      if redis.call('HEXISTS', KEYS[4 * i - 1], id) == 0 then
        redis.call('ZADD', KEYS[4 * i - 2], expiry, id)
        redis.call('HSET', KEYS[4 * i - 1], id, string.format('%.0f', amount))
        reserved[i] = reserved[i] + amount
        restored = restored + 1
      end
    end
    save(false)
  end
  return report({restored})
elseif op == 'set_spent' then
  local changed = 0
  for i = 1, n do
    local expected, wanted = tonumber(ARGV[a + 2 * i - 2]), tonumber(ARGV[a + 2 * i - 1])
    if spent[i] == expected and expected ~= wanted then
      spent[i] = wanted
      changed = changed + 1
    end
  end
  local held = 0
  for i = 1, n do
    local sum = 0
    for _, v in ipairs(redis.call('HVALS', KEYS[4 * i - 1])) do sum = sum + tonumber(v) end
    if sum ~= reserved[i] then reserved[i] = sum; changed = changed + 1 end
  end
  save(false)
  return report({changed})
end
return report({0})
"""


def _render_script() -> str:
    # The TTL is a constant of the script (one SHA for every call).
    return _SCRIPT.replace("TTL", str(KEY_TTL_SECONDS))


class LedgerUnavailableError(Exception):
    """Redis did not answer: the caller refuses the money question (fail closed)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One budget as the script sees it: its id, hard limit and per-minute capacity (micro-units; 0 = none)."""

    budget_id: int
    limit: int
    per_minute: int = 0


@dataclass(frozen=True, slots=True)
class Standing:
    """A budget's counters after an operation (micro-units)."""

    spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one charge: ``code`` is FITS, or the budget (index into the lines) and why not."""

    code: int

    @property
    def fits(self) -> bool:
        return self.code == FITS

    @property
    def line_index(self) -> int:
        return self.code // 10 - 1

    @property
    def reason(self) -> int:
        return self.code % 10


def micros(amount: Decimal) -> int:
    """Money as integer micro-units (the catalog's prices have six decimal places)."""
    return int((amount * MICROS).to_integral_value())


def money(value: int) -> Decimal:
    return (Decimal(value) / MICROS).quantize(Decimal("0.000001"))


def period_key(period: str, budget_id: int) -> list[str]:
    base = f"{PREFIX}{budget_id}:{period}"
    return [base, base + ":holds", base + ":amounts", f"{PREFIX}{budget_id}:bucket"]


@functools.cache
def client() -> redis.Redis:
    """One pool per process; short timeouts so a dead Redis cannot stall requests."""
    return redis.Redis.from_url(settings.BILLING_REDIS_URL, socket_connect_timeout=0.5, socket_timeout=1.0)


@functools.cache
def _script() -> redis.commands.core.Script:
    return client().register_script(_render_script())


@receiver(setting_changed)
def _forget_client(*, setting: str, **kwargs: object) -> None:
    if setting == "BILLING_REDIS_URL":
        client.cache_clear()
        _script.cache_clear()


def _run(op: str, lines: Sequence[Line], period: str, args: list[object]) -> list[int]:
    keys: list[str] = []
    head: list[object] = [op, len(lines)]
    for line in lines:
        keys.extend(period_key(period, line.budget_id))
        head.extend([line.limit, line.per_minute])
    try:
        return [int(v) for v in _script()(keys=keys, args=[*head, *args])]
    except redis.RedisError as error:
        raise LedgerUnavailableError(str(error)) from error


def _standings(raw: list[int], lines: Sequence[Line]) -> list[Standing]:
    tail = raw[len(raw) - 2 * len(lines) :]
    return [Standing(tail[2 * i], tail[2 * i + 1]) for i in range(len(lines))]


def _idx(indexes: Sequence[int]) -> list[int]:
    return [len(indexes), *(i + 1 for i in indexes)]


@dataclass(frozen=True, slots=True)
class ChargeResult:
    verdicts: list[Verdict]
    before: list[int]  # each budget's spent before the batch
    after: list[Standing]


def charge(lines: Sequence[Line], period: str, items: Sequence[tuple[int, Sequence[int]]]) -> ChargeResult:
    """Charge each ``(amount, indexes of the lines that apply)`` in order; an item that does not fit is skipped."""
    args: list[object] = [len(items)]
    for amount, indexes in items:
        args.extend([amount, *_idx(indexes)])
    raw = _run("charge", lines, period, args)
    m, n = len(items), len(lines)
    return ChargeResult(
        verdicts=[Verdict(code) for code in raw[:m]],
        before=raw[m : m + n],
        after=_standings(raw, lines),
    )


def check(lines: Sequence[Line], period: str, amount: int, indexes: Sequence[int]) -> tuple[Verdict, list[Standing]]:
    """Would ``amount`` fit every budget of ``indexes``? Changes nothing but dropping expired holds."""
    raw = _run("check", lines, period, [amount, *_idx(indexes)])
    return Verdict(raw[0]), _standings(raw, lines)


def reserve(
    lines: Sequence[Line], period: str, *, hold_id: str, expires_ms: int, amount: int
) -> tuple[Verdict, list[Standing]]:
    """Hold ``amount`` on every line until ``expires_ms`` (unix ms), if it fits all of them."""
    raw = _run("reserve", lines, period, [hold_id, expires_ms, amount, *_idx(range(len(lines)))])
    return Verdict(raw[0]), _standings(raw, lines)


def finish(lines: Sequence[Line], period: str, *, hold_id: str, actual: int) -> bool:
    """Drop the hold and count ``actual`` as spent on every line; False when the hold is gone (expired, finished)."""
    raw = _run("finish", lines, period, [hold_id, actual])
    return raw[0] == 0


def restore(lines: Sequence[Line], period: str, *, hold_id: str, expires_ms: int, amount: int) -> int:
    """Put back a hold the database has and Redis lost (reconciliation); returns on how many lines."""
    return _run("restore", lines, period, [hold_id, expires_ms, amount])[0]


def standings(lines: Sequence[Line], period: str) -> list[Standing]:
    """The counters of ``lines`` now (expired holds dropped first)."""
    return _standings(_run("state", lines, period, []), lines)


def set_spent(lines: Sequence[Line], period: str, pairs: Sequence[tuple[int, int]]) -> int:
    """Per line, set ``spent`` from ``expected`` to ``wanted`` if it still reads ``expected``; re-sum the holds.

    Returns how many counters changed. A line whose counter moved since
    ``expected`` was read is left alone (a charge landed meanwhile): the next
    reconciliation looks again.
    """
    args: list[object] = []
    for expected, wanted in pairs:
        args.extend([expected, wanted])
    return _run("set_spent", lines, period, args)[0]
