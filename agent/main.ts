#!/usr/bin/env node
// The edge agent is built in the next milestone (the registry mirror for containerd).
// Until then this entry point says so plainly instead of pretending to work.
process.stderr.write('pollen-agent: the edge agent is not implemented yet; run pollen-seed (see README)\n')
process.exit(2)
