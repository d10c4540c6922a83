//! The Lua scripts that write state, so every ETag check and the write it guards run as
//! one atomic step on the server.
//!
//! The on-store layout is upstream's: a hash with the value in `data`, a counter in
//! `version` (the ETag, bumped by `HINCRBY`) and a `first-write` field set to `0` by
//! writes made with first-write concurrency. With RedisJSON and a request content type of
//! `application/json`, upstream keeps a JSON document `{"data": ..., "version": N}`
//! instead; the `*_JSON` scripts write that form.
//!
//! The acceptance rules are exactly upstream's. The expected version is a number, `0`
//! standing for "no ETag". A write or delete passes when the key has no version (it is
//! missing, holds a plain string from before ETags, or has an empty version), when the
//! version equals the expected one, or, with no ETag, when the key carries no
//! `first-write` mark (a delete without an ETag always passes). So an ETag for a missing
//! key creates it (a JSON document then starts at that ETag plus one) or deletes nothing.
//! A plain string is replaced by a write. A refusal is the error reply
//! `ERR failed to set key <key>` (or `failed to delete <key>`); the transaction script
//! answers `ETAG ...` instead for an operation that carried an ETag, so the caller can
//! report a mismatch.
//!
//! The TTL argument is seconds: positive sets the expiry, zero or negative removes it,
//! empty leaves whatever expiry the key has.

use std::sync::LazyLock;

use redis::Script;

/// Writes one hash-layout value. KEYS[1]: key. ARGV: expected version (`0` for none),
/// data, `0` for first-write concurrency (else `1`), TTL seconds (may be empty). Returns
/// the new version.
pub(crate) static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key, expected = KEYS[1], ARGV[1]
local version = redis.pcall("HGET", key, "version")
if type(version) == "table" then
  redis.call("DEL", key)
  version = false
end
local marked = redis.call("HEXISTS", key, "first-write") == 1
if version and version ~= "" and version ~= expected and (marked or expected ~= "0") then
  return redis.error_reply("ERR failed to set key " .. key)
end
redis.call("HSET", key, "data", ARGV[2])
if ARGV[3] == "0" then
  redis.call("HSET", key, "first-write", 0)
end
local written = redis.call("HINCRBY", key, "version", 1)
if ARGV[4] ~= "" then
  if tonumber(ARGV[4]) > 0 then
    redis.call("EXPIRE", key, ARGV[4])
  else
    redis.call("PERSIST", key)
  end
end
return written
"#,
    )
});

/// Deletes one hash-layout value. KEYS[1]: key. ARGV[1]: expected version, `0` for none.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local version = redis.pcall("HGET", KEYS[1], "version")
if type(version) == "string" and version ~= "" and version ~= ARGV[1] and ARGV[1] ~= "0" then
  return redis.error_reply("ERR failed to delete " .. KEYS[1])
end
return redis.call("DEL", KEYS[1])
"#,
    )
});

/// Writes one RedisJSON-layout value. KEYS[1]: key. ARGV: expected version (`0` for
/// none), the document `{"data": ...}`, `0` for first-write concurrency, TTL seconds (as
/// [`SET`]). Returns the new version.
pub(crate) static SET_JSON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local key, expected = KEYS[1], ARGV[1]
local version = redis.pcall("JSON.GET", key, ".version")
if type(version) == "table" then
  redis.call("JSON.DEL", key)
  version = false
end
if not version or version == "" then
  version = expected
end
local marked = redis.pcall("JSON.GET", key, ".first-write")
marked = marked and type(marked) ~= "table"
if version ~= expected and (marked or expected ~= "0") then
  return redis.error_reply("ERR failed to set key " .. key)
end
redis.call("JSON.SET", key, "$", ARGV[2])
if ARGV[3] == "0" then
  redis.call("JSON.SET", key, ".first-write", 0)
end
local written = version + 1
redis.call("JSON.SET", key, ".version", written)
if ARGV[4] ~= "" then
  if tonumber(ARGV[4]) > 0 then
    redis.call("EXPIRE", key, ARGV[4])
  else
    redis.call("PERSIST", key)
  end
end
return written
"#,
    )
});

/// Deletes one RedisJSON-layout value. KEYS[1]: key. ARGV[1]: expected version, `0` for
/// none.
pub(crate) static DELETE_JSON: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local version = redis.pcall("JSON.GET", KEYS[1], ".version")
if type(version) == "string" and version ~= "" and version ~= ARGV[1] and ARGV[1] ~= "0" then
  return redis.error_reply("ERR failed to delete " .. KEYS[1])
end
return redis.call("JSON.DEL", KEYS[1])
"#,
    )
});

/// Applies a whole transaction, all or nothing. KEYS[i]: the key of operation i. For each
/// operation, six ARGV entries: `set` or `del`; `hash` or `json` (the layout); the
/// expected version (`0` for none); the data (hash) or document (json), empty for a
/// delete; TTL seconds (as [`SET`]; ignored by a delete); `1` when the request carried
/// an ETag (else `0`), which makes a refusal an `ETAG` reply.
///
/// Every check runs first, against the state the earlier operations of the transaction
/// leave behind, and nothing is written unless all pass; the checks are those of the
/// single-key scripts. As in upstream's transactions, writes here never add the
/// `first-write` mark.
pub(crate) static TRANSACTION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local per = 6
local count = #KEYS
local known = {}
local function current(key, json)
  local state = known[key]
  if state then
    return state
  end
  state = {version = false, marked = false, wrong = false}
  local kind = redis.call("TYPE", key).ok
  if json then
    state.wrong = kind ~= "none" and kind ~= "ReJSON-RL"
    local version = redis.pcall("JSON.GET", key, ".version")
    if type(version) == "string" then
      state.version = version
    end
    local marked = redis.pcall("JSON.GET", key, ".first-write")
    state.marked = (marked and type(marked) ~= "table") or false
  else
    state.wrong = kind ~= "none" and kind ~= "hash"
    if not state.wrong then
      local version = redis.call("HGET", key, "version")
      if version then
        state.version = version
      end
      state.marked = redis.call("HEXISTS", key, "first-write") == 1
    end
  end
  known[key] = state
  return state
end
local function refuse(what, key, with_etag)
  local code = "ERR "
  if with_etag == "1" then
    code = "ETAG "
  end
  return redis.error_reply(code .. what .. key)
end

local planned = {}
for i = 1, count do
  local key = KEYS[i]
  local base = (i - 1) * per
  local op, json, expected = ARGV[base + 1], ARGV[base + 2] == "json", ARGV[base + 3]
  local with_etag = ARGV[base + 6]
  local state = current(key, json)
  if op == "set" then
    local version = state.version
    if json then
      if state.wrong then
        return redis.error_reply("ERR failed to set key " .. key .. ": not a JSON document")
      end
      if version == false or version == "" then
        version = expected
      end
      if version ~= expected and (state.marked or expected ~= "0") then
        return refuse("failed to set key ", key, with_etag)
      end
    else
      if version and version ~= "" and version ~= expected and (state.marked or expected ~= "0") then
        return refuse("failed to set key ", key, with_etag)
      end
      if version == false then
        version = "0"
      end
    end
    if tonumber(version) == nil then
      return redis.error_reply("ERR failed to set key " .. key .. ": version is not an integer")
    end
    planned[i] = tonumber(version) + 1
    state.version = tostring(planned[i])
    state.wrong = false
    if json then
      state.marked = false
    end
  else
    local version = state.version
    if version and version ~= "" and version ~= expected and expected ~= "0" then
      return refuse("failed to delete ", key, with_etag)
    end
    state.version, state.marked, state.wrong = false, false, false
  end
end

for i = 1, count do
  local key = KEYS[i]
  local base = (i - 1) * per
  local op, layout, value, ttl = ARGV[base + 1], ARGV[base + 2], ARGV[base + 4], ARGV[base + 5]
  if op == "set" then
    if layout == "json" then
      local version = redis.pcall("JSON.GET", key, ".version")
      if type(version) == "table" then
        redis.call("DEL", key)
      end
      redis.call("JSON.SET", key, "$", value)
      redis.call("JSON.SET", key, ".version", planned[i])
    else
      local kind = redis.call("TYPE", key).ok
      if kind ~= "none" and kind ~= "hash" then
        redis.call("DEL", key)
      end
      redis.call("HSET", key, "data", value)
      redis.call("HINCRBY", key, "version", 1)
    end
    if ttl ~= "" then
      if tonumber(ttl) > 0 then
        redis.call("EXPIRE", key, ttl)
      else
        redis.call("PERSIST", key)
      end
    end
  else
    redis.call("DEL", key)
  end
end
return count
"#,
    )
});
