-- wrk script for bench/front.sh and bench/checks.sh: each request a new name with its own
-- signature, from SIGNED_FILE ("<target>\t<signature>" lines; thread k of WRK_THREADS takes
-- lines k, k+n, ...); past the end it starts again, and a signature used twice is refused
-- (non-2xx). BODY_FILE is the multipart body, CONTENT_TYPE its Content-Type.
local threads, targets, signatures, n, body = {}, {}, {}, 0, nil
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
  body = f:read("*a")
  f:close()
  local nthreads, i = tonumber(os.getenv("WRK_THREADS")), 0
  for line in io.lines(os.getenv("SIGNED_FILE")) do
    if i % nthreads == tid then
      local target, signature = line:match("^(%S+)\t(%S+)$")
      table.insert(targets, target)
      table.insert(signatures, signature)
    end
    i = i + 1
  end
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
end
function request()
  n = n % #targets + 1
  wrk.headers["X-Transfer-Signature"] = signatures[n]
  return wrk.format(nil, targets[n])
end
