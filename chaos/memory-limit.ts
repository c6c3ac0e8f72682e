/**
 * Runs each soak process under the memory limit its Kubernetes manifest gives it. In a
 * memory cgroup of its own (v2 or v1; needs root), Node sizes its V8 heap from the limit as it
 * does in the pod (a heap limit of about half the memory limit, which also caps how far V8
 * lets garbage pile up between major GCs), and the kernel kills a process that outgrows the
 * limit, which the soak counts as a failure. Where no cgroup can be made (not root, a
 * read-only cgroup filesystem), each process gets the heap limit Node would derive from its
 * memory limit as `--max-old-space-size`, without the kernel's limit, and the soak says so.
 */
import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const MiB = 2 ** 20

/** How a process is to be spawned: `prefix` before `node`, `nodeArgs` after it (test/helpers/pollen-process.ts). */
export interface LimitedSpawn {
  prefix?: string[]
  nodeArgs?: string[]
}

interface Hierarchy {
  version: 1 | 2
  /** The directory the soak's groups go under (created). */
  base: string
}

export class MemoryLimits {
  readonly #hierarchy: Hierarchy | undefined
  readonly #groups = new Map<string, string>()
  /** Each process's limit, by name, as given to spawnOptions. */
  readonly #limitBytes = new Map<string, number>()
  /** Why there are no cgroups, when there are none. */
  readonly fallbackReason: string | undefined

  private constructor(hierarchy: Hierarchy | undefined, fallbackReason: string | undefined) {
    this.#hierarchy = hierarchy
    this.fallbackReason = fallbackReason
  }

  /**
   * Makes the soak's parent group `pollen-soak-<tag>` (beside this process's own memory cgroup
   * on v2, whose rules forbid children in a group with processes; under it on v1). Never
   * throws: without cgroups every process gets the heap flag instead.
   */
  static async create(tag: string, root = '/sys/fs/cgroup', selfCgroupFile = '/proc/self/cgroup'): Promise<MemoryLimits> {
    try {
      return new MemoryLimits(await makeBase(tag, root, await readFile(selfCgroupFile, 'utf8')), undefined)
    } catch (err) {
      return new MemoryLimits(undefined, (err as Error).message)
    }
  }

  /** One line for the soak's log: how the limits are applied. */
  describe(): string {
    const h = this.#hierarchy
    return h === undefined
      ? `no memory cgroups (${this.fallbackReason}): each process gets --max-old-space-size of half its memory limit, as Node derives it, and no kernel limit`
      : `each process in a memory cgroup (v${h.version}) with its manifest's limit, under ${h.base}`
  }

  /** How to spawn the process `name` under a limit of `bytes`; its restarts get the same group. */
  async spawnOptions(name: string, bytes: number): Promise<LimitedSpawn> {
    this.#limitBytes.set(name, bytes)
    const h = this.#hierarchy
    if (h === undefined) return { nodeArgs: [`--max-old-space-size=${Math.floor(bytes / 2 / MiB)}`] }
    let dir = this.#groups.get(name)
    if (dir === undefined) {
      dir = join(h.base, name.replace(/[^a-zA-Z0-9_-]/g, '-'))
      await mkdir(dir, { recursive: true })
      await writeFile(join(dir, h.version === 2 ? 'memory.max' : 'memory.limit_in_bytes'), String(bytes))
      if (h.version === 2) await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined)
      this.#groups.set(name, dir)
    }
    // The shell joins the group and execs node, which keeps its pid (what the sampler reads).
    return { prefix: ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', join(dir, 'cgroup.procs')] }
  }

  /** Processes the kernel killed for outgrowing `name`'s limit; undefined without a group. */
  async oomKills(name: string): Promise<number | undefined> {
    const dir = this.#groups.get(name)
    if (dir === undefined || this.#hierarchy === undefined) return undefined
    const file = this.#hierarchy.version === 2 ? 'memory.events' : 'memory.oom_control'
    const text = await readFile(join(dir, file), 'utf8').catch(() => '')
    const m = /^oom_kill (\d+)$/m.exec(text)
    return m === null ? undefined : Number(m[1])
  }

  /** For the soak's result: how the limits were applied, each process's limit and its OOM kills (0 without cgroups). */
  async summary(): Promise<{ how: string; limitBytes: Record<string, number>; oomKills: Record<string, number> }> {
    const names = [...this.#limitBytes.keys()]
    const kills = await Promise.all(names.map(async (name) => [name, (await this.oomKills(name)) ?? 0] as const))
    return { how: this.describe(), limitBytes: Object.fromEntries(this.#limitBytes), oomKills: Object.fromEntries(kills) }
  }

  /** Removes the groups (their processes must have exited); failures are left for the OS. */
  async close(): Promise<void> {
    for (const dir of this.#groups.values()) await rmdir(dir).catch(() => undefined)
    this.#groups.clear()
    if (this.#hierarchy !== undefined) await rmdir(this.#hierarchy.base).catch(() => undefined)
  }
}

async function makeBase(tag: string, root: string, selfCgroup: string): Promise<Hierarchy> {
  const name = `pollen-soak-${tag}`
  if (await exists(join(root, 'cgroup.controllers'))) {
    const own = /^0::(\/.*)$/m.exec(selfCgroup)?.[1]
    if (own === undefined) throw new Error('cgroup v2 but /proc/self/cgroup has no 0:: line')
    const base = join(root, own.replace(/\/[^/]*$/, ''), name)
    await mkdir(base, { recursive: true })
    const controllers = await readFile(join(base, 'cgroup.controllers'), 'utf8')
    if (!controllers.split(/\s+/).includes('memory')) throw new Error(`the memory controller is not enabled for ${base}`)
    await writeFile(join(base, 'cgroup.subtree_control'), '+memory')
    return { version: 2, base }
  }
  const memoryRoot = join(root, 'memory')
  if (await exists(join(memoryRoot, 'memory.limit_in_bytes'))) {
    const own = /^\d+:memory:(\/.*)$/m.exec(selfCgroup)?.[1] ?? '/'
    // Inside a container /proc/self/cgroup may name the host's path, which is not mounted here.
    const parent = (await exists(join(memoryRoot, own))) ? join(memoryRoot, own) : memoryRoot
    const base = join(parent, name)
    await mkdir(base, { recursive: true })
    return { version: 1, base }
  }
  throw new Error(`no cgroup v2 or v1 memory hierarchy at ${root}`)
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}
