import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { makeBlobFile, makeTarGzLayerFile, writeBlobFile, type BlobFile } from './blob-file.js'
import { RegistryClient, type FetchedManifest, type RegistryAuth } from './registry-client.js'

export { makeBlobFile, makeTarGzLayerFile, type BlobFile, type TarGzLayerFile } from './blob-file.js'
export { RegistryClient, RegistryHttpError, type FetchedManifest, type RegistryAuth } from './registry-client.js'

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const

export interface Platform {
  os: string
  architecture: string
  variant?: string
}

export interface BuildImageOptions {
  /** Size in bytes of each layer, in order. Layer i is seeded with `${seed}/layer/${i}`. */
  layers: number[]
  seed: string | number
  /** Default linux/amd64; written into the config blob. */
  platform?: Platform
  /** Build a Docker schema 2 manifest instead of an OCI one. */
  dockerSchema2?: boolean
  /**
   * `random` (default): each layer is `size` raw pseudo-random bytes, only labelled tar+gzip;
   * fine for registries, which never look inside, but not unpackable. `tar+gzip`: each layer
   * is a real gzip'd tar holding one file `data/layer-<i>.bin` of `size` pseudo-random bytes
   * (blob ≈ size + a few KiB), so `ctr images pull` can unpack it.
   */
  layerFormat?: 'random' | 'tar+gzip'
}

export interface BuiltImage {
  /** Exact manifest bytes; push them as-is to keep the digest. */
  manifest: Buffer
  manifestDigest: string
  mediaType: string
  config: BlobFile
  layers: BlobFile[]
  /** The config's rootfs.diff_ids, in layer order: the uncompressed tar digests for `tar+gzip`, else the layer digests. */
  diffIds: string[]
  platform: Platform
}

export interface BuiltIndex {
  manifest: Buffer
  manifestDigest: string
  mediaType: string
  children: Array<{ image: BuiltImage; platform: Platform }>
}

/**
 * Builds an image in `dir`: layer blobs in `opts.layerFormat` (default random content
 * labelled tar+gzip, with diff_ids equal to the layer digests; `tar+gzip` gives real
 * archives whose diff_ids are the uncompressed tar digests), a config, and a manifest.
 * Deterministic for a given seed, sizes, platform and formats.
 */
export async function buildImage(dir: string, opts: BuildImageOptions): Promise<BuiltImage> {
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' }
  const docker = opts.dockerSchema2 === true
  await mkdir(dir, { recursive: true })
  const layers: BlobFile[] = []
  const diffIds: string[] = []
  for (const [i, size] of opts.layers.entries()) {
    const seed = `${opts.seed}/layer/${i}`
    if (opts.layerFormat === 'tar+gzip') {
      const layer = await makeTarGzLayerFile(dir, size, seed, `data/layer-${i}.bin`)
      layers.push({ path: layer.path, digest: layer.digest, size: layer.size })
      diffIds.push(layer.diffId)
    } else {
      const layer = await makeBlobFile(dir, size, seed)
      layers.push(layer)
      diffIds.push(layer.digest)
    }
  }
  const configJson = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Labels: { 'dev.pollen.test.seed': String(opts.seed) } },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }
  const config = await writeBlobFile(dir, Buffer.from(JSON.stringify(configJson)))
  const mediaType = docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest
  const layerType = docker ? MEDIA_TYPES.dockerLayer : MEDIA_TYPES.ociLayer
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
      layers: layers.map((layer) => ({ mediaType: layerType, digest: layer.digest, size: layer.size })),
    }),
  )
  return { manifest, manifestDigest: sha256(manifest), mediaType, config, layers, diffIds, platform }
}

/** An OCI index (or, with dockerManifestList, a Docker manifest list) over already-built images. */
export function buildIndex(
  images: Array<{ image: BuiltImage; platform: Platform }>,
  opts: { dockerManifestList?: boolean } = {},
): BuiltIndex {
  const mediaType = opts.dockerManifestList ? MEDIA_TYPES.dockerManifestList : MEDIA_TYPES.ociIndex
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: images.map(({ image, platform }) => ({
        mediaType: image.mediaType,
        digest: image.manifestDigest,
        size: image.manifest.length,
        platform: { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}) },
      })),
    }),
  )
  return { manifest, manifestDigest: sha256(manifest), mediaType, children: images }
}

/** Uploads one blob unless the registry already has it. */
export function pushBlob(registryUrl: string, repo: string, file: BlobFile, auth?: RegistryAuth): Promise<'uploaded' | 'existed'> {
  return new RegistryClient(registryUrl, auth).pushBlob(repo, file)
}

/** PUTs manifest bytes under `reference` (tag or digest); resolves to their digest. */
export function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  bytes: Buffer,
  mediaType: string,
  auth?: RegistryAuth,
): Promise<string> {
  return new RegistryClient(registryUrl, auth).pushManifest(repo, reference, bytes, mediaType)
}

/** Pushes config, layers, then the manifest under `tag`; resolves to the manifest digest. */
export async function pushImage(registryUrl: string, repo: string, tag: string, image: BuiltImage, auth?: RegistryAuth): Promise<string> {
  return pushImageWith(new RegistryClient(registryUrl, auth), repo, tag, image)
}

/** Pushes every child image by digest, then the index under `tag`; resolves to the index digest. */
export async function pushIndex(registryUrl: string, repo: string, tag: string, index: BuiltIndex, auth?: RegistryAuth): Promise<string> {
  const client = new RegistryClient(registryUrl, auth)
  for (const { image } of index.children) await pushImageWith(client, repo, image.manifestDigest, image)
  return client.pushManifest(repo, tag, index.manifest, index.mediaType)
}

/** GETs a manifest (accepting all four manifest types) exactly as served. */
export function fetchManifest(registryUrl: string, repo: string, reference: string, auth?: RegistryAuth): Promise<FetchedManifest> {
  return new RegistryClient(registryUrl, auth).fetchManifest(repo, reference)
}

/** Streams a blob to `destPath` and verifies its digest. */
export function fetchBlob(registryUrl: string, repo: string, digest: string, destPath: string, auth?: RegistryAuth): Promise<BlobFile> {
  return new RegistryClient(registryUrl, auth).fetchBlob(repo, digest, destPath)
}

async function pushImageWith(client: RegistryClient, repo: string, reference: string, image: BuiltImage): Promise<string> {
  for (const blob of [image.config, ...image.layers]) await client.pushBlob(repo, blob)
  const digest = await client.pushManifest(repo, reference, image.manifest, image.mediaType)
  if (digest !== image.manifestDigest) throw new Error(`pushed manifest digest ${digest} != built ${image.manifestDigest}`)
  return digest
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`
}
