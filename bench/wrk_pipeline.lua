-- wrk with HTTP/1.1 pipelining, for bench/warm_throughput.py: every write on a connection
-- carries `depth` GETs (the first script argument, default 16), and wrk counts each
-- answer as a request. Written for warmd after wrk's documented pipelining pattern.
-- Usage: wrk -t1 -c64 -d3s -s bench/wrk_pipeline.lua http://host:port -- 16

local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  local requests = {}
  for number = 1, depth do
    requests[number] = wrk.format("GET", "/item/" .. number)
  end
  batch = table.concat(requests)
end

function request()
  return batch
end
