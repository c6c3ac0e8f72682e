/** What the profiles showed, attached to a row when it misses its target (see bench/results/profiles/SUMMARY.md). */
export const MISS_NOTES = {
  cacheHit: 'not profiled yet',
  peerFetch: 'not profiled yet',
  concurrentRss: 'not profiled yet',
}

/** Printed under the table and written to the JSON. */
export const RUN_NOTES: string[] = []
