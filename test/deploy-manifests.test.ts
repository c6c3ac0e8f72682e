import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join, posix } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AGENT_MEMORY_LIMIT, SEED_MEMORY_LIMIT } from '../chaos/constants.js'
import { parseAgentArgs, parseConfigureArgs } from '../agent/config.js'
import { loadDockerConfig } from '../content/registry-client/credentials.js'
import { parseSize } from '../protocol/units.js'
import { parseSeedCommand } from '../seed/config.js'
import {
  KUBERNETES_DIR,
  ROOT,
  kubernetesYamlFiles,
  kustomizationObjects,
  kustomizations,
  readDockerfile,
  readYaml,
  type K8sObject,
} from './deploy-files.js'

// Checks the files under deploy/ and the Dockerfile by reading them: no cluster, no Docker.
// The flag checks run the built CLIs (npm run build, or npx tsc -p tsconfig.build.json).

interface Container {
  name: string
  image: string
  command?: string[]
  args?: string[]
  env?: Array<{ name: string; value?: string; valueFrom?: any }>
  ports?: Array<{ name?: string; containerPort: number }>
  volumeMounts?: Array<{ name: string; mountPath: string }>
  livenessProbe?: any
  readinessProbe?: any
  securityContext?: any
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> }
}

const objects = kustomizations().flatMap((k) => kustomizationObjects(k))
const named = (kind: string, name: string): K8sObject | undefined => objects.find((o) => o.kind === kind && o.metadata.name === name)
const workloads = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'DaemonSet')
const containersOf = (w: K8sObject): Container[] => [...(w.spec.template.spec.initContainers ?? []), ...w.spec.template.spec.containers]
const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined): boolean =>
  Object.entries(selector).every(([k, v]) => labels?.[k] === v)
const workload = (name: string): K8sObject => {
  const w = workloads.find((o) => o.metadata.name === name)
  if (w === undefined) throw new Error(`no workload ${name}`)
  return w
}
/** The container running `pollen-<which>` (its main one, not an init container). */
const mainContainer = (w: K8sObject): Container => w.spec.template.spec.containers[0]
/** Container args with `$(VAR)` replaced by sample values of the container's env (Kubernetes leaves unknown ones as they are). */
const expandedArgs = (c: Container): string[] => {
  const env = new Map((c.env ?? []).map((e) => [e.name, e.value ?? (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP' ? '192.0.2.10' : '10.0.0.7')]))
  return (c.args ?? []).map((a) => a.replace(/\$\((\w+)\)/g, (whole, v: string) => env.get(v) ?? whole))
}
/** The value after `--flag` (or in `--flag=value`); undefined when absent. */
const flag = (args: string[], name: string): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === `--${name}`) return args[i + 1]
    if (args[i]!.startsWith(`--${name}=`)) return args[i]!.slice(name.length + 3)
  }
  return undefined
}
const flagsOf = (args: string[]): string[] => args.filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]!)
const helpFlags = (main: string): Set<string> => {
  const help = execFileSync(process.execPath, [join(ROOT, 'dist', main), '--help'], { encoding: 'utf8', timeout: 30_000 })
  return new Set(help.match(/(?<![\w-])--?[a-z][a-z0-9-]*/g))
}
const isUnder = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir.replace(/\/$/, '')}/`)

describe('the Kubernetes manifests', () => {
  it('list only files that exist in their kustomizations, and every manifest is listed in one', () => {
    const listed = new Set<string>()
    for (const k of kustomizations()) {
      const { resources } = readYaml(join(KUBERNETES_DIR, k)) as { resources: string[] }
      for (const r of resources) {
        const path = posix.join(posix.dirname(k), r)
        expect(existsSync(join(KUBERNETES_DIR, path)), `${k} lists ${r}`).toBe(true)
        listed.add(path)
      }
    }
    expect(kubernetesYamlFiles().filter((f) => !f.endsWith('kustomization.yaml') && !listed.has(f))).toEqual([])
    expect(readYaml(join(KUBERNETES_DIR, 'kustomization.yaml')).namespace).toBe('pollen')
    expect(named('Namespace', 'pollen')).toBeDefined()
  })

  it('give every object a kind, a name and no namespace other than pollen, once', () => {
    const keys = objects.map((o) => `${o.kind}/${o.metadata.name}`)
    expect(new Set(keys).size).toBe(keys.length)
    for (const o of objects) {
      expect(o.apiVersion, o.file).toMatch(/\w/)
      expect(o.metadata.name, o.file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      if (o.kind !== 'Namespace') expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('pollen')
    }
  })

  it('select each workload\'s own pods, and run images that the kustomization sets', () => {
    const { images } = readYaml(join(KUBERNETES_DIR, 'kustomization.yaml')) as { images: Array<{ name: string }> }
    for (const w of workloads) {
      expect(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), w.metadata.name).toBe(true)
      for (const c of containersOf(w)) expect(images.map((i) => i.name), `${w.metadata.name}/${c.name}`).toContain(c.image)
    }
  })

  it('route each Service to pods that have its target ports', () => {
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      const selected = workloads.filter((w) => matches(svc.spec.selector, w.spec.template.metadata.labels))
      expect(selected.map((w) => w.metadata.name), `Service ${svc.metadata.name} selects`).toHaveLength(1)
      const ports = selected[0]!.spec.template.spec.containers.flatMap((c: Container) => c.ports ?? [])
      for (const p of svc.spec.ports) {
        expect(p.name, `Service ${svc.metadata.name} port ${p.port}`).toMatch(/\w/)
        const target = p.targetPort ?? p.port
        expect(ports.some((cp: { name?: string; containerPort: number }) => (typeof target === 'number' ? cp.containerPort === target : cp.name === target)), `${svc.metadata.name} targetPort ${target}`).toBe(true)
      }
    }
  })

  it('probe named ports of their own container', () => {
    for (const w of workloads) {
      for (const c of w.spec.template.spec.containers as Container[]) {
        for (const probe of [c.livenessProbe, c.readinessProbe]) {
          expect(probe, `${w.metadata.name}/${c.name} has probes`).toBeDefined()
          expect((c.ports ?? []).map((p) => p.name), `${w.metadata.name}/${c.name} probe port`).toContain(probe.httpGet.port)
        }
        expect(c.livenessProbe.httpGet.path).toBe('/healthz')
        expect(c.readinessProbe.httpGet.path).toBe('/readyz')
      }
    }
  })

  it('point the ServiceMonitor at a Service port and the PodMonitor at a container port', () => {
    const serviceMonitors = objects.filter((o) => o.kind === 'ServiceMonitor')
    const podMonitors = objects.filter((o) => o.kind === 'PodMonitor')
    expect(serviceMonitors.map((o) => o.metadata.name)).toEqual(['pollen-seed'])
    expect(podMonitors.map((o) => o.metadata.name)).toEqual(['pollen-agent'])
    for (const sm of serviceMonitors) {
      const services = objects.filter((o) => o.kind === 'Service' && matches(sm.spec.selector.matchLabels, o.metadata.labels))
      expect(services).toHaveLength(1)
      for (const e of sm.spec.endpoints) expect(services[0]!.spec.ports.map((p: { name: string }) => p.name)).toContain(e.port)
    }
    for (const pm of podMonitors) {
      const selected = workloads.filter((w) => matches(pm.spec.selector.matchLabels, w.spec.template.metadata.labels))
      expect(selected).toHaveLength(1)
      const ports = (selected[0]!.spec.template.spec.containers as Container[]).flatMap((c) => c.ports ?? []).map((p) => p.name)
      for (const e of pm.spec.podMetricsEndpoints) expect(ports).toContain(e.port)
      // The alert rules use job="pollen-agent".
      expect(selected[0]!.spec.template.metadata.labels[pm.spec.jobLabel]).toBe('pollen-agent')
    }
  })

  it('mount only volumes that exist, and use every volume', () => {
    for (const w of workloads) {
      const volumes = (w.spec.template.spec.volumes as Array<{ name: string }>).map((v) => v.name)
      const mounted = containersOf(w).flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name))
      for (const m of mounted) expect(volumes, `${w.metadata.name} mounts ${m}`).toContain(m)
      for (const v of volumes) expect(mounted, `${w.metadata.name} uses volume ${v}`).toContain(v)
    }
  })

  it('take Secret and ConfigMap keys that exist, and service accounts that exist', () => {
    const keysOf = (kind: 'Secret' | 'ConfigMap', name: string): string[] => {
      const o = named(kind, name)
      expect(o, `${kind} ${name}`).toBeDefined()
      return Object.keys({ ...o!.data, ...o!.stringData })
    }
    for (const w of workloads) {
      const spec = w.spec.template.spec
      expect(named('ServiceAccount', spec.serviceAccountName), `${w.metadata.name} service account`).toBeDefined()
      for (const c of containersOf(w)) {
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef
          if (ref !== undefined) expect(keysOf(e.valueFrom.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name)).toContain(ref.key)
        }
      }
      const sources = (spec.volumes as any[]).flatMap((v) => [v, ...(v.projected?.sources ?? [])])
      for (const s of sources) {
        const ref = s.secret !== undefined ? { kind: 'Secret' as const, name: s.secret.secretName, items: s.secret.items } : s.configMap !== undefined ? { kind: 'ConfigMap' as const, name: s.configMap.name, items: s.configMap.items } : undefined
        if (ref === undefined) continue
        const keys = keysOf(ref.kind, ref.name)
        for (const item of ref.items ?? []) expect(keys, `${ref.kind} ${ref.name}`).toContain(item.key)
      }
    }
  })

  it('run the CLIs with flags that their --help lists and that their parsers accept', () => {
    const known = { 'pollen-agent': helpFlags('agent/main.js'), 'pollen-seed': helpFlags('seed/main.js') }
    let checked = 0
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        const cli = c.command?.[0]
        if (cli !== 'pollen-agent' && cli !== 'pollen-seed') continue
        const args = expandedArgs(c)
        for (const f of flagsOf(args)) expect(known[cli].has(f), `${w.metadata.name}/${c.name}: ${cli} ${f}`).toBe(true)
        for (const a of args) expect(a, `${w.metadata.name}/${c.name}: unexpanded variable`).not.toMatch(/\$\(/)
        if (cli === 'pollen-seed') expect(parseSeedCommand(args)).toMatchObject({ kind: 'serve' })
        else if (args[0] === 'configure-containerd') expect(parseConfigureArgs(args.slice(1))).toMatchObject({ all: true, hostsDir: '/etc/containerd/certs.d' })
        else expect(parseAgentArgs(args)).toMatchObject({ seed: expect.any(String) })
        checked++
      }
    }
    expect(checked).toBe(3)
  })

  it('give the CLIs files from mounted volumes', () => {
    const fileFlags = ['data', 'credentials', 'oidc-jwks', 'oidc-token-file', 'hosts-dir', 'join-token-file', 'mirror-token-file']
    for (const w of workloads) {
      for (const c of containersOf(w)) {
        const args = c.args ?? []
        for (const f of fileFlags) {
          const path = flag(args, f)
          if (path === undefined) continue
          expect((c.volumeMounts ?? []).some((m) => isUnder(path, m.mountPath)), `${w.metadata.name}/${c.name} --${f} ${path}`).toBe(true)
        }
      }
    }
  })

  it('let agents enroll with their projected token at the seed, which admits that service account', () => {
    const seed = mainContainer(workload('pollen-seed'))
    const agentPod = workload('pollen-agent').spec.template.spec
    const agent = mainContainer(workload('pollen-agent'))
    const seedArgs = seed.args!
    const tokenVolume = (agentPod.volumes as any[]).find((v) => v.projected?.sources?.some((s: any) => s.serviceAccountToken !== undefined))
    const token = tokenVolume.projected.sources.find((s: any) => s.serviceAccountToken !== undefined).serviceAccountToken
    expect(token.audience).toBe(flag(seedArgs, 'oidc-audience'))
    expect(token.expirationSeconds).toBeLessThanOrEqual(24 * 3600)
    const mount = agent.volumeMounts!.find((m) => m.name === tokenVolume.name)!
    expect(flag(agent.args!, 'oidc-token-file')).toBe(posix.join(mount.mountPath, token.path))
    expect(flag(seedArgs, 'oidc-subject')).toBe(`system:serviceaccount:pollen:${agentPod.serviceAccountName}`)
    expect(flag(seedArgs, 'oidc-jwks')).toBe('/etc/pollen/oidc/jwks.json')
    const jwks = JSON.parse(named('ConfigMap', 'pollen-seed-oidc-jwks')!.data!['jwks.json']!) as { keys: unknown }
    expect(Array.isArray(jwks.keys)).toBe(true)
  })

  it('point the agents at the seed\'s Service and port, from the host network', () => {
    const agentPod = workload('pollen-agent').spec.template.spec
    const seedUrl = new URL(flag(mainContainer(workload('pollen-agent')).args!, 'seed')!)
    const [service, namespace] = seedUrl.hostname.split('.')
    expect(seedUrl.hostname).toBe(`${service}.${namespace}.svc.cluster.local`)
    const svc = named('Service', service!)
    expect(svc, `Service ${service}`).toBeDefined()
    expect(svc!.metadata.namespace).toBe(namespace)
    const port = svc!.spec.ports.find((p: { port: number }) => p.port === Number(seedUrl.port))
    expect(port, `Service ${service} port ${seedUrl.port}`).toBeDefined()
    const seed = mainContainer(workload('pollen-seed'))
    const target = seed.ports!.find((p) => p.name === port.targetPort)!
    expect(flag(seed.args!, 'listen')).toBe(`:${target.containerPort}`)
    expect(agentPod.hostNetwork).toBe(true)
    expect(agentPod.dnsPolicy).toBe('ClusterFirstWithHostNet')
    // The mirror stays on loopback, where it needs no mirror token; configure-containerd writes that address.
    const agentArgs = mainContainer(workload('pollen-agent')).args!
    const configure = (agentPod.initContainers as Container[]).find((c) => c.args?.[0] === 'configure-containerd')!
    expect(flag(agentArgs, 'listen')).toBe('127.0.0.1:5050')
    expect(flag(configure.args!, 'listen')).toBe(flag(agentArgs, 'listen'))
    expect(flag(agentArgs, 'p2p-announce')).toBe('/ip4/$(NODE_IP)/tcp/5051')
    expect(flag(seed.args!, 'p2p-announce')).toBe('/ip4/$(POD_IP)/tcp/5001')
  })

  it('run the long-lived containers as non-root on a read-only root with no capabilities, and root only in single-mount init containers', () => {
    for (const w of workloads) {
      const pod = w.spec.template.spec
      for (const c of pod.containers as Container[]) {
        const sc = { ...pod.securityContext, ...c.securityContext }
        expect(sc.runAsNonRoot, `${w.metadata.name}/${c.name}`).toBe(true)
        expect(sc.runAsUser ?? 1000).not.toBe(0)
        expect(sc.readOnlyRootFilesystem).toBe(true)
        expect(sc.allowPrivilegeEscalation).toBe(false)
        expect(sc.capabilities.drop).toEqual(['ALL'])
        expect(sc.capabilities.add).toBeUndefined()
        expect(c.resources?.limits?.memory, `${w.metadata.name}/${c.name} memory limit`).toBeDefined()
      }
      for (const c of (pod.initContainers ?? []) as Container[]) {
        expect(c.securityContext.capabilities.drop).toEqual(['ALL'])
        expect(c.securityContext.allowPrivilegeEscalation).toBe(false)
        if (c.securityContext.runAsUser === 0) expect(c.volumeMounts, `${w.metadata.name}/${c.name} runs as root`).toHaveLength(1)
      }
    }
    expect(workload('pollen-seed').spec.strategy.type).toBe('Recreate')
    expect(workload('pollen-seed').spec.replicas).toBe(1)
    expect(workload('pollen-agent').spec.template.spec.tolerations).toContainEqual({ operator: 'Exists' })
  })

  it('give the agent and the seed the memory limits the soak runs them under (chaos/constants.ts)', () => {
    const quantity = (q: string | undefined): number => {
      const m = /^(\d+)(Mi|Gi)$/.exec(q ?? '')
      if (m === null) throw new Error(`unexpected memory quantity ${q}`)
      return Number(m[1]) * 2 ** (m[2] === 'Gi' ? 30 : 20)
    }
    expect(quantity(mainContainer(workload('pollen-agent')).resources?.limits?.memory)).toBe(parseSize(AGENT_MEMORY_LIMIT))
    expect(quantity(mainContainer(workload('pollen-seed')).resources?.limits?.memory)).toBe(parseSize(SEED_MEMORY_LIMIT))
  })

  it('keep the Services\' link variables (POLLEN_SEED_SERVICE_HOST…) out of the pods, where they would read as POLLEN_* options', () => {
    const linkPrefixes = objects.filter((o) => o.kind === 'Service').map((s) => `${s.metadata.name.toUpperCase().replaceAll('-', '_')}_`)
    expect(linkPrefixes.some((p) => p.startsWith('POLLEN_'))).toBe(true)
    for (const w of workloads) {
      expect(w.spec.template.spec.enableServiceLinks, w.metadata.name).toBe(false)
      for (const c of containersOf(w)) for (const e of c.env ?? []) expect(e.name, `${w.metadata.name}/${c.name}`).not.toMatch(/^POLLEN_/)
    }
  })

  it('hold upstream credentials the seed can load', () => {
    const secret = named('Secret', 'pollen-seed-credentials')!
    const configJson = { ...secret.data, ...secret.stringData }['config.json']!
    expect(() => loadDockerConfig(configJson)).not.toThrow()
    expect(flag(mainContainer(workload('pollen-seed')).args!, 'credentials')).toBe('/etc/pollen/credentials/config.json')
  })
})

describe('the Dockerfile', () => {
  const dockerfile = readDockerfile()
  const runtime = dockerfile.stages.at(-1)!
  const build = dockerfile.stages[0]!
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }

  it('builds on Node 20 slim and runs as a non-root numeric user', () => {
    expect(dockerfile.stages.map((s) => s.from)).toEqual(['node:20-bookworm-slim', 'node:20-bookworm-slim'])
    const users = runtime.instructions.filter((i) => i.keyword === 'USER').map((i) => i.args)
    expect(users.length).toBeGreaterThan(0)
    const user = users.at(-1)!.split(':')[0]!
    expect(user).toMatch(/^\d+$/)
    expect(user).not.toBe('0')
    // The manifests run it as that uid.
    expect(mainContainer(workload('pollen-agent')).securityContext.runAsUser).toBe(Number(user))
    expect(workload('pollen-seed').spec.template.spec.securityContext.runAsUser).toBe(Number(user))
  })

  it('puts both CLIs on PATH at the package\'s bin entries, with an exec-form entrypoint', () => {
    const links = runtime.instructions.filter((i) => i.keyword === 'RUN').flatMap((i) => [...i.args.matchAll(/ln -s (\S+) (\S+)/g)].map((m) => [m[2], m[1]]))
    expect(Object.fromEntries(links)).toMatchObject(Object.fromEntries(Object.entries(pkg.bin).map(([name, file]) => [`/usr/local/bin/${name}`, `/app/${file}`])))
    const entrypoint = runtime.instructions.find((i) => i.keyword === 'ENTRYPOINT')!
    expect(JSON.parse(entrypoint.args)).toEqual(['pollen-agent'])
    const copies = runtime.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args)
    expect(copies.every((c) => c.startsWith('--from=build '))).toBe(true)
  })

  it('copies every source folder the build compiles, and the .dockerignore lets them through', () => {
    const include = (JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { include: string[] }).include
    const sources = build.instructions.filter((i) => i.keyword === 'COPY' && !i.args.startsWith('--')).flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    for (const folder of include) expect(sources).toContain(folder)
    const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l.startsWith('!')).map((l) => l.slice(1).trim())
    for (const s of sources) expect(allowed, `.dockerignore lets ${s} through`).toContain(s)
    expect(build.instructions.map((i) => `${i.keyword} ${i.args}`).join('\n')).toMatch(/npm ci[\s\S]*npm run build[\s\S]*npm prune --omit=dev/)
  })

  it('exposes every port the manifests name', () => {
    const exposed = runtime.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/).map(Number))
    const ports = workloads.flatMap((w) => (w.spec.template.spec.containers as Container[]).flatMap((c) => c.ports ?? []).map((p) => p.containerPort))
    expect(exposed).toEqual(expect.arrayContaining([...ports, 5050]))
  })
})
