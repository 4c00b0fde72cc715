-- wrk script: POST the same multipart body (one Fernet token) to a new name on every request,
-- /upload/<RUN_ID>-<thread>-<n>, so each request is a real write and not a duplicate answered
-- from the ledger. BODY_FILE, CONTENT_TYPE and RUN_ID come from the environment.
local counter = 0
local thread_id = 0
local threads = {}
local body = nil

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
  body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
end

function request()
  counter = counter + 1
  return wrk.format(nil, string.format("/upload/%s-%d-%d", os.getenv("RUN_ID"), thread_id, counter))
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("LUA-SUMMARY requests=%d non2xx=%d\n", summary.requests,
                         summary.errors.status))
end
