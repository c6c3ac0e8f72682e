import { formatDuration, formatRate, formatSize, percent } from '../protocol/human-units.js'

/** What `preheatImages` reports as it goes. */
export interface PreheatListener {
  /** The image's manifests are read: this many distinct blobs and bytes to fetch. */
  resolved(image: string, totals: { blobs: number; bytes: number }): void
  /** Bytes of a blob arrived (negative: a broken attempt's bytes are taken back before a retry). */
  bytes(image: string, n: number): void
  blobDone(image: string, blob: { digest: string; size: number; ms: number }): void
  imageDone(image: string, outcome: { ok: true } | { ok: false; error: string }): void
}

/** Progress of one image, as the reporters show it. */
export interface ImageState {
  image: string
  /** Totals; undefined until the manifests are read. */
  blobs?: number
  bytes?: number
  blobsDone: number
  bytesDone: number
  /** Milliseconds since the epoch. */
  startedAt: number
  finishedAt?: number
  error?: string
}

export interface Output {
  write(text: string): unknown
}

export interface ReporterInit {
  images: string[]
  out: Output
  /** Failures go here (stderr). */
  err: Output
  now?: () => number
}

const BAR_WIDTH = 20
const NAME_WIDTH = 48
const DIGEST_SHOWN = 'sha256:'.length + 12

/** `sha256:0123456789ab`: a digest cut to what people compare. */
export function shortDigest(digest: string): string {
  return digest.length > DIGEST_SHOWN ? digest.slice(0, DIGEST_SHOWN) : digest
}

/** The updating TTY line of one image: name, bar, percent, bytes, blobs, rate (or its state). */
export function ttyLine(s: ImageState, nameWidth: number, now: number): string {
  const name = fit(s.image, nameWidth)
  if (s.error !== undefined) return `${name}  FAILED: ${s.error}`
  if (s.bytes === undefined || s.blobs === undefined) return `${name}  resolving…`
  const elapsed = (s.finishedAt ?? now) - s.startedAt
  const p = s.finishedAt !== undefined ? 100 : percent(s.bytesDone, s.bytes)
  const filled = Math.round((p / 100) * BAR_WIDTH)
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`
  const tail = s.finishedAt === undefined ? formatRate(s.bytesDone, elapsed) : `done in ${formatDuration(elapsed)}, ${formatRate(s.bytesDone, elapsed)}`
  return `${name}  ${bar} ${`${p}%`.padStart(4)}  ${formatSize(s.bytesDone)}/${formatSize(s.bytes)}  ${s.blobsDone}/${s.blobs} blobs  ${tail}`
}

/** The plain line once an image's totals are known. */
export function resolvedLine(image: string, totals: { blobs: number; bytes: number }): string {
  return `${image}: ${totals.blobs} ${plural(totals.blobs, 'blob')}, ${formatSize(totals.bytes)} to preheat`
}

/** The plain line for a finished blob: `IMAGE: blob sha256:… 1.0 MiB in 120ms (2/4)`. */
export function blobLine(image: string, blob: { digest: string; size: number; ms: number }, done: number, total: number): string {
  return `${image}: blob ${shortDigest(blob.digest)} ${formatSize(blob.size)} in ${formatDuration(blob.ms)} (${done}/${total})`
}

/** The plain line for a finished image, or its failure. */
export function imageLine(s: ImageState, now: number): string {
  if (s.error !== undefined) return `${s.image}: FAILED: ${s.error}`
  const elapsed = (s.finishedAt ?? now) - s.startedAt
  return `${s.image}: preheated ${s.blobsDone} ${plural(s.blobsDone, 'blob')}, ${formatSize(s.bytesDone)} in ${formatDuration(elapsed)} (${formatRate(s.bytesDone, elapsed)})`
}

/** The last line: how many images, blobs and bytes, how fast, and which images failed. */
export function summaryLine(states: ImageState[], elapsedMs: number): string {
  const ok = states.filter((s) => s.error === undefined)
  const blobs = states.reduce((n, s) => n + s.blobsDone, 0)
  const bytes = states.reduce((n, s) => n + s.bytesDone, 0)
  const failed = states.filter((s) => s.error !== undefined).map((s) => s.image)
  const head = `preheated ${ok.length} of ${states.length} ${plural(states.length, 'image')}: ${blobs} ${plural(blobs, 'blob')}, ${formatSize(bytes)} in ${formatDuration(elapsedMs)} (${formatRate(bytes, elapsedMs)})`
  return failed.length === 0 ? head : `${head}; failed: ${failed.join(', ')}`
}

/** Keeps each image's state; the reporters below draw it. */
abstract class Reporter implements PreheatListener {
  protected readonly states = new Map<string, ImageState>()
  protected readonly out: Output
  protected readonly err: Output
  protected readonly now: () => number
  readonly #startedAt: number

  constructor(init: ReporterInit) {
    this.out = init.out
    this.err = init.err
    this.now = init.now ?? Date.now
    this.#startedAt = this.now()
    for (const image of init.images) this.states.set(image, { image, blobsDone: 0, bytesDone: 0, startedAt: this.#startedAt })
  }

  resolved(image: string, totals: { blobs: number; bytes: number }): void {
    Object.assign(this.#state(image), totals)
  }

  bytes(image: string, n: number): void {
    this.#state(image).bytesDone += n
  }

  blobDone(image: string, _blob: { digest: string; size: number; ms: number }): void {
    this.#state(image).blobsDone++
  }

  imageDone(image: string, outcome: { ok: true } | { ok: false; error: string }): void {
    const s = this.#state(image)
    s.finishedAt = this.now()
    if (!outcome.ok) s.error = outcome.error
  }

  /** Writes the summary line (and, for failed images, one line each on `err`). */
  finish(): void {
    const states = [...this.states.values()]
    for (const s of states) if (s.error !== undefined) this.err.write(`pollen-seed: preheat failed for ${s.image}: ${s.error}\n`)
    this.out.write(`${summaryLine(states, this.now() - this.#startedAt)}\n`)
  }

  #state(image: string): ImageState {
    let s = this.states.get(image)
    if (s === undefined) {
      s = { image, blobsDone: 0, bytesDone: 0, startedAt: this.now() }
      this.states.set(image, s)
    }
    return s
  }
}

/** For logs and pipes: one line per image resolved, per blob, per image finished, then the summary. */
export class PlainProgress extends Reporter {
  override resolved(image: string, totals: { blobs: number; bytes: number }): void {
    super.resolved(image, totals)
    this.out.write(`${resolvedLine(image, totals)}\n`)
  }

  override blobDone(image: string, blob: { digest: string; size: number; ms: number }): void {
    super.blobDone(image, blob)
    const s = this.states.get(image)
    this.out.write(`${blobLine(image, blob, s?.blobsDone ?? 0, s?.blobs ?? 0)}\n`)
  }

  override imageDone(image: string, outcome: { ok: true } | { ok: false; error: string }): void {
    super.imageDone(image, outcome)
    const s = this.states.get(image)
    if (s !== undefined && outcome.ok) this.out.write(`${imageLine(s, this.now())}\n`)
  }
}

export interface TtyReporterInit extends ReporterInit {
  /** Terminal width; lines are cut to it so that they never wrap. */
  columns?: number
  /** Redraw at most this often (default 100 ms). */
  intervalMs?: number
}

/** For a terminal: one line per image, redrawn in place as bytes arrive; then the summary. */
export class TtyProgress extends Reporter {
  readonly #columns: number
  readonly #nameWidth: number
  readonly #timer: NodeJS.Timeout
  #drawn = 0

  constructor(init: TtyReporterInit) {
    super(init)
    // A pseudo-terminal may report 0 columns.
    this.#columns = init.columns !== undefined && init.columns > 0 ? init.columns : 120
    this.#nameWidth = Math.min(NAME_WIDTH, Math.max(...init.images.map((i) => i.length), 1))
    this.#timer = setInterval(() => this.render(), init.intervalMs ?? 100)
    this.#timer.unref()
    this.render()
  }

  override imageDone(image: string, outcome: { ok: true } | { ok: false; error: string }): void {
    super.imageDone(image, outcome)
    this.render()
  }

  /** Draws every image's line over the previous drawing. */
  render(): void {
    const now = this.now()
    let text = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : ''
    for (const s of this.states.values()) text += `\r\x1b[2K${ttyLine(s, this.#nameWidth, now).slice(0, Math.max(20, this.#columns - 1))}\n`
    this.#drawn = this.states.size
    this.out.write(text)
  }

  override finish(): void {
    clearInterval(this.#timer)
    this.render()
    super.finish()
  }
}

function fit(text: string, width: number): string {
  return text.length > width ? `${text.slice(0, width - 1)}…` : text.padEnd(width)
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`
}
