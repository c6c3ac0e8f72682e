/**
 * Prints the top frames of .cpuprofile files by self time (and the share of samples), for
 * bench/results/profiles/SUMMARY.md.   tsx bench/throughput/profile-summary.ts FILE… [--top N]
 */
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

async function summarize(file: string, top: number): Promise<string> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!
    const dt = profile.timeDeltas[i] ?? 0
    total += dt
    const f = node.callFrame
    const where = f.url === '' ? '' : ` ${f.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\/.*\/(dist|main)\//, '')}:${f.lineNumber + 1}`
    const key = `${f.functionName || '(anonymous)'}${where}`
    self.set(key, (self.get(key) ?? 0) + dt)
  })
  const idle = self.get('(idle)') ?? 0
  const lines = [`### ${basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${((total - idle) / 1e6).toFixed(2)} s busy`, '', '| self ms | % of busy | frame |', '|---|---|---|']
  for (const [key, us] of [...self].filter(([k]) => k !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, top)) {
    lines.push(`| ${(us / 1000).toFixed(0)} | ${((100 * us) / Math.max(1, total - idle)).toFixed(1)} | \`${key}\` |`)
  }
  return lines.join('\n')
}

const args = process.argv.slice(2)
const topAt = args.indexOf('--top')
const top = topAt < 0 ? 15 : Number(args[topAt + 1])
const files = args.filter((a, i) => a !== '--top' && i !== topAt + 1)
for (const f of files) process.stdout.write(`${await summarize(f, top)}\n\n`)
