/** The soak's defaults, image plan and pass/fail thresholds, in one place. */

const MiB = 2 ** 20

export const DEFAULT_DURATION = '30m'
export const DEFAULT_AGENTS = 4
/**
 * Each agent's --cache-size. A rollout pulls the whole suite (IMAGES × IMAGE_BYTES ≈ 18 MiB),
 * more than the cache holds, so every agent passes its high watermark (0.85, agent default)
 * and evicts down to the low one (0.70) in every rollout; one image (≈ 6 MiB) still fits
 * under the low watermark.
 */
export const DEFAULT_CACHE_SIZE = '12MiB'
/**
 * The seed's --cache-size. Every rollout pushes new versions (≈ 100 MiB of new content a
 * minute in a 30-min soak), so without a limit the seed's store, index and per-blob state
 * would only grow; with 256 MiB the seed evicts every few minutes, as a long-running seed does.
 */
export const SEED_CACHE_SIZE = '256MiB'

/**
 * The memory limits of deploy/kubernetes (agent.yaml's and seed.yaml's main containers; a test
 * checks they agree). Each soak process runs under its limit (memory-limit.ts), so that Node
 * sizes its heap as in the pod and a process that outgrows the limit is killed.
 */
export const AGENT_MEMORY_LIMIT = '1GiB'
export const SEED_MEMORY_LIMIT = '2GiB'

/** Generated images: repositories chaos/app-a, chaos/app-b, … */
export const IMAGES = 3
/** Every image has a base layer that never changes, a middle one that changes every MID_EVERY versions, and a top one that changes every version. */
export const BASE_LAYER_BYTES = 3 * MiB
export const MID_LAYER_BYTES = 2 * MiB
export const TOP_LAYER_BYTES = 1 * MiB
export const MID_EVERY = 3
/** Small images, so that a busy machine still gets through many rollouts (requests, fills, evictions) per hour. */
export const IMAGE_BYTES = BASE_LAYER_BYTES + MID_LAYER_BYTES + TOP_LAYER_BYTES

/** Chance that a rollout SIGKILLs one agent (not pulling in that rollout) and restarts it afterwards. */
export const FAULT_PROBABILITY = 0.2
/** The victim dies this long (at most) after its rollout started, while the others pull. */
export const KILL_DELAY_MAX_MS = 3_000
/** A random pause between rollouts, at most this long. */
export const PAUSE_MAX_MS = 2_000
/** Blobs fetched at once by one pulling client, as containerd does. */
export const PULL_PARALLELISM = 3
export const MANIFEST_TIMEOUT_MS = 60_000
export const BLOB_TIMEOUT_MS = 180_000

/** How often RSS and open fds are sampled: duration / SAMPLES_PER_RUN, within these bounds. */
export const SAMPLES_PER_RUN = 360
export const MIN_SAMPLE_INTERVAL_MS = 2_000
export const MAX_SAMPLE_INTERVAL_MS = 5_000
/** Slopes are fitted over samples taken after this fraction of the run (skips the warm-up). */
export const SLOPE_WINDOW_START = 0.5

/** Pass/fail: a process whose RSS grows faster than this (least squares, second half) fails the soak. */
export const MAX_RSS_SLOPE_MIB_PER_HOUR = 64
/** Pass/fail: a process whose open-fd count grows faster than this fails the soak. */
export const MAX_FD_SLOPE_PER_HOUR = 120
/** Below this run length the slopes are mostly noise (GC cycles, in-flight sockets); the report says so. */
export const SHORT_RUN_MS = 20 * 60_000
