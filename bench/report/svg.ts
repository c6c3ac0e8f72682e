/** Hand-written SVG bar charts for RESULTS.md: no dependency, deterministic output. */

export interface BarSeries {
  name: string
  /** One value per group; null draws no bar (a failed or missing run) and marks it "n/a". */
  values: Array<number | null>
}

export interface GroupedBarChart {
  title: string
  /** Axis label, e.g. "p95 completion ÷ ideal". */
  unit: string
  groups: string[]
  series: BarSeries[]
  /** Horizontal reference lines (a target or a limit). */
  lines?: Array<{ value: number; label: string }>
}

const COLORS = ['#8c8c8c', '#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2']
const W = 720
const H = 380
const M = { top: 48, right: 20, bottom: 84, left: 64 }

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const num = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))

/** Splits a label into at most three lines of about `width` characters. */
function wrap(label: string, width: number): string[] {
  const lines: string[] = []
  for (const word of label.split(' ')) {
    const last = lines.at(-1)
    if (last !== undefined && last.length + 1 + word.length <= width) lines[lines.length - 1] = `${last} ${word}`
    else lines.push(word)
  }
  return lines.length <= 3 ? lines : [...lines.slice(0, 2), `${lines.slice(2).join(' ').slice(0, width - 1)}…`]
}

/** A "nice" axis maximum ≥ v: 1, 2 or 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

/** Renders grouped vertical bars, each labelled with its value, a legend, and the reference lines. */
export function groupedBarChart(c: GroupedBarChart): string {
  const plotW = W - M.left - M.right
  const plotH = H - M.top - M.bottom
  const all = [...c.series.flatMap((s) => s.values.filter((v): v is number => v !== null)), ...(c.lines ?? []).map((l) => l.value)]
  const max = niceMax(Math.max(0, ...all) * 1.08)
  const y = (v: number): number => M.top + plotH - (v / max) * plotH
  const groupW = plotW / Math.max(1, c.groups.length)
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, c.series.length))
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
  ]
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e0e0e0"/>`)
    out.push(`<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${num(v)}</text>`)
  }
  out.push(`<text x="16" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${M.top + plotH / 2})">${esc(c.unit)}</text>`)
  c.groups.forEach((g, gi) => {
    const x0 = M.left + gi * groupW + (groupW - barW * c.series.length) / 2
    c.series.forEach((s, si) => {
      const v = s.values[gi] ?? null
      const x = x0 + si * barW
      if (v === null) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${M.top + plotH - 4}" text-anchor="middle" font-size="10" fill="#888">n/a</text>`)
        return
      }
      out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(M.top + plotH - y(v)).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name}, ${g}: ${num(v)}`)}</title></rect>`)
      out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${num(v)}</text>`)
    })
    const cx = (M.left + gi * groupW + groupW / 2).toFixed(1)
    const lines = wrap(g, Math.max(8, Math.floor(groupW / 6.5)))
    out.push(`<text x="${cx}" y="${M.top + plotH + 16}" text-anchor="middle">${lines.map((l, i) => `<tspan x="${cx}" dy="${i === 0 ? 0 : 13}">${esc(l)}</tspan>`).join('')}</text>`)
  })
  out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${M.top + plotH}" y2="${M.top + plotH}" stroke="#333"/>`)
  for (const l of c.lines ?? []) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(l.value).toFixed(1)}" y2="${y(l.value).toFixed(1)}" stroke="#d62728" stroke-dasharray="6 4"/>`)
    out.push(`<text x="${W - M.right}" y="${(y(l.value) - 4).toFixed(1)}" text-anchor="end" fill="#d62728">${esc(l.label)}</text>`)
  }
  c.series.forEach((s, si) => {
    const x = M.left + si * 170
    out.push(`<rect x="${x}" y="${H - 24}" width="12" height="12" fill="${COLORS[si % COLORS.length]}"/><text x="${x + 16}" y="${H - 14}">${esc(s.name)}</text>`)
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
