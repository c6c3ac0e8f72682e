/** The seed's --help text. */
import { DEFAULT_TOKEN_LIFETIME_S, MAX_TOKEN_LIFETIME_S } from '../protocol/admission.js'
import { DEFAULT_JOIN_TOKEN_SCOPE, DEFAULT_JOIN_TOKEN_TTL_MS, DEFAULT_JOIN_TOKEN_USES, DEFAULT_KEY_ROTATION_MS, DEFAULT_OIDC_SCOPE } from './admission/constants.js'
import { DEFAULT_AUDIENCE, DEFAULT_DATA_DIR, DEFAULT_ISSUER, DEFAULT_LISTEN, DEFAULT_P2P_LISTEN, DEFAULT_TAG_TTL_MS } from './constants.js'
import { DEFAULT_FANOUT_CHILDREN, DEFAULT_FANOUT_DIRECT } from './fanout/planner.js'

export const SEED_HELP = `Usage:
  pollen-seed [options]                                  Run the seed.
  pollen-seed join-token create --data DIR [--ttl DURATION] [--uses N|unlimited] [--scope PATTERN]...
  pollen-seed join-token list --data DIR
  pollen-seed join-token revoke --data DIR ID
  pollen-seed revoke --data DIR PEERID [--reason TEXT]
  pollen-seed preheat --data DIR [--seed URL] [--platform all|OS/ARCH] IMAGE...

The Pollen seed: a pull-through cache in front of upstream registries. It alone holds
the upstream credentials and serves the OCI pull API to agents. It also admits nodes:
it redeems join tokens for admission tokens bound to the node's PeerId.

Options (running the seed):
  --config FILE               A YAML file of options (or POLLEN_CONFIG); see Configuration below.
  --listen HOST:PORT          Address of the registry API (default ${DEFAULT_LISTEN}).
  --data DIR                  Data directory: content cache and admission state (default ${DEFAULT_DATA_DIR}).
  --upstream NS=URL           An upstream registry: NS is the registry host agents name with
                              ?ns=, URL its API base. Repeatable. Default:
                              docker.io=https://registry-1.docker.io
  --realm-host NS=HOST        Also trust HOST as a token realm for upstream NS (the upstream's
                              own host always is; docker.io trusts auth.docker.io). Repeatable.
  --credentials FILE          Docker config.json with upstream credentials ("auths": auth, or
                              username/password). Never logged, never sent to clients.
  --metrics-listen HOST:PORT  Serve /metrics, /healthz and /readyz here (off by default;
                              /healthz and /readyz are always on --listen too).
  --cache-size SIZE           Content cache capacity (10GiB, 500MB, bytes; default: no limit).
                              Least recently used blobs are evicted past it; blobs being read
                              or filled never are.
  --cache-high-watermark F    Start evicting above this fraction of --cache-size (default 0.85).
  --cache-low-watermark F     Evict down to this fraction (default 0.70).
  --tag-ttl DURATION          How long a tag's digest is cached before asking upstream again
                              (default ${DEFAULT_TAG_TTL_MS / 1000}s). The last answer is served when upstream is down.
  --default-ns NS             Registry meant by requests without ?ns= (default docker.io).
  --log-level LEVEL           trace, debug, info, warn, error (default info).
  --p2p-listen MULTIADDR      libp2p address of the seed's bootstrap node (default ${DEFAULT_P2P_LISTEN}).
                              Repeatable. Agents learn it from GET /v1/bootstrap.
  --p2p-announce MULTIADDR    Address to announce to agents instead (e.g. the seed's service IP). Repeatable.
  --key-rotation DURATION     A new admission signing key takes over after this long (default
                              ${DEFAULT_KEY_ROTATION_MS / 3_600_000}h). Retired keys stay published until their tokens expire.
  --token-ttl DURATION        Lifetime of issued admission tokens (default ${DEFAULT_TOKEN_LIFETIME_S / 60}m, at most ${MAX_TOKEN_LIFETIME_S / 60}m).
  --issuer NAME               Issuer (iss) of admission tokens (default ${DEFAULT_ISSUER}).
  --audience NAME             Audience (aud) of admission tokens (default ${DEFAULT_AUDIENCE}); agents and
                              peers refuse tokens for another audience.
  --oidc-issuer URL           Also admit agents that present an OIDC token from this issuer (exact
                              iss), e.g. a Kubernetes projected service-account token. Needs
                              --oidc-jwks and --oidc-audience.
  --oidc-jwks FILE|URL        The issuer's public keys: a JWKS file (read again when it changes)
                              or an https:// URL (http:// only on loopback).
  --oidc-audience AUD         Audience the OIDC tokens must carry (e.g. pollen-seed).
  --oidc-scope PATTERN        Repositories OIDC-admitted agents may pull. Repeatable (default '${DEFAULT_OIDC_SCOPE.join(' ')}').
  --oidc-subject PATTERN      Admit only tokens whose sub matches, * matching anything, e.g.
                              'system:serviceaccount:pollen:*'. Repeatable (default: any sub).
  --anonymous-pulls           Serve manifests and blobs without an admission token. By default every
                              /v2/ request needs Authorization: Bearer <admission token> whose scope
                              covers the repository. Only for a network where every host is trusted.
  --fanout-direct N           During a rollout, serve each blob to the first N agents that ask and
                              send every later one to follow an agent already fetching it
                              (default ${DEFAULT_FANOUT_DIRECT}; 0 serves every agent from the seed).
  --fanout-children N         Agents that follow one agent at once (default ${DEFAULT_FANOUT_CHILDREN}: pipelined chains,
                              best when edge uplinks are as fast as downlinks).
  -h, --help                  Show this help.

Configuration (running the seed; the commands take flags only): every option but --config and
--help can also be set in the --config YAML file, named without dashes (tag-ttl: 1m; repeatable
options as a list, upstream: [ 'docker.io=https://registry-1.docker.io' ]; anonymous-pulls:
true), or in the environment as POLLEN_ and the name in upper snake case (POLLEN_TAG_TTL=1m;
repeatable options separated by commas). Flags win over the environment, the environment over
the file, the file over the defaults; a repeatable option's list comes whole from one source.
Unknown keys and POLLEN_ variables are errors.

Commands (safe to run beside a seed that uses the same --data):
  join-token create           Create a join token. Prints only the token on stdout (it is
                              shown once and stored only as a hash); a summary goes to stderr.
    --data DIR                The seed's data directory (required).
    --ttl DURATION            How long the token can be redeemed (default ${DEFAULT_JOIN_TOKEN_TTL_MS / 3_600_000}h, at most 366d).
    --uses N|unlimited        How many nodes it admits (default ${DEFAULT_JOIN_TOKEN_USES}).
    --scope PATTERN           Repositories the admitted nodes may pull, e.g. 'team-a/**',
                              'docker.io/library/*'. Repeatable (default '${DEFAULT_JOIN_TOKEN_SCOPE.join(' ')}'). Quote it
                              so the shell does not expand it.
  join-token list             List join tokens: id, state, expiry, uses left, scope.
    --data DIR                The seed's data directory (required).
  join-token revoke ID        Forget the join token with this id (from list); it admits no one more.
    --data DIR                The seed's data directory (required).
  revoke PEERID               Stop admitting the node with this libp2p PeerId. Admission tokens
                              it already holds stay valid until they expire (at most ${MAX_TOKEN_LIFETIME_S / 60}m).
    --data DIR                The seed's data directory (required).
    --reason TEXT             Why, for the revocation list and the audit log.
  preheat IMAGE...            Make the running seed fetch images (e.g. docker.io/library/alpine:3.20,
                              10.0.0.9:5055/team/app:v1) into its cache ahead of a rollout.
                              Signs itself a short-lived admission token with the seed's key.
                              Exit status: 0 all preheated, 1 any failed, 2 bad arguments.
    --data DIR                The seed's data directory (required).
    --seed URL                The running seed (default http://${DEFAULT_LISTEN}).
    --platform all|OS/ARCH    Platforms to follow in an index, e.g. linux/arm64. Repeatable (default all).
    --issuer, --audience      The running seed's --issuer and --audience (defaults as above).
`
