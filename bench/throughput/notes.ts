/**
 * What the CPU profiles showed (bench/results/profiles/SUMMARY.md), attached to a row of the
 * suite when it misses its target, and printed under the table.
 */
export const MISS_NOTES = {
  cacheHit:
    'the agent is mostly idle during a cache hit since it serves from reused buffers (profile: ~30% busy, top frames writeBuffer = socket write, read = pread); ' +
    'what is left is one user-space copy per byte (page cache → buffer → socket) against docker-registry\'s sendfile, and on this shared 2-core machine the ratio moves ±30% between runs',
  peerFetch:
    'CPU across both agents on 2 cores: per 256 MiB the receiver spends ~3.8 s (ChaCha20-Poly1305 decrypt in noise, socket and temp-file writes, ' +
    'uint8arraylist concat inside noise decrypt, GC) and the sender ~4.3 s (socket writes of 64 KiB noise frames, encrypt, GC from a 1 MiB buffer per file read); ' +
    'the verified path also writes the temp file, serves curl from it and hashes on a worker thread, work the unverified stream does not do, and all of it competes for the same 2 cores',
  concurrentRss: 'each cache-hit response holds 3 × 4 MiB buffers (SEND_BUFFERS × SEND_CHUNK_BYTES); the rest is the agent\'s resting heap',
}

/** Printed under the table and written to the JSON. */
export const RUN_NOTES: string[] = [
  'Shared machine: 2 cores, other benchmarks and CI may run at the same time; compare rows of one run, not runs.',
  'CPU s is the named process\'s user+system time for the row (all threads: the receiving agent\'s includes its hashing worker). Limits run their receiving end in the bench process, the sending end in a child.',
  'A limit below a Pollen row (raw TCP under docker-registry) means the bench process, which receives the limits, was starved of CPU in that run: ratios to it are then not meaningful.',
  'The verified peer fetch is one transfer (agent B caches the blob); curl reads it from B while B fills it.',
]
